"""The driver's progress lines and the library-noise filter."""

import logging

from vgs.sweep.output import NOISE, _DropNoise, progress_line


def test_progress_line_names_the_trial_and_its_scores():
    result = {
        "epoch": 2,
        "train_loss": 0.15134,
        "val_s2i_r10": 0.35,
        "val_i2s_r10": 0.452,
        "val_wer": 0.5,
        "epoch_seconds": 44.12,
        "workers": 1,
    }
    assert (
        progress_line("layers=1 latent=256 s0", result, 3)
        == "[layers=1 latent=256 s0] epoch 2/3 loss 0.1513 val s2i_r10 0.350 i2s_r10 0.452 wer 0.500 (44.1 s)"
    )
    assert progress_line("base", {**result, "workers": 2}, 3).endswith("(44.1 s, 2 workers)")


def test_routine_library_lines_are_dropped_and_warnings_kept():
    keep = _DropNoise()
    noise = logging.LogRecord("ray.tune", logging.WARNING, "", 0, f"x {NOISE[0]} y", None, None)
    real = logging.LogRecord("ray.tune", logging.WARNING, "", 0, "Trial run_trial_1 errored", None, None)
    assert not keep.filter(noise) and keep.filter(real)


def test_progress_bar_fills_with_the_work_done():
    import io

    from vgs.progress import Progress, bar_line

    assert bar_line("MFCC", 12, 24, "utt", 2.0) == "MFCC [############············]  50% 12/24 utt (6.0 utt/s, ETA 2 s)"
    assert bar_line("MFCC", 24, 24, "utt", 4.0, final=True).startswith("MFCC [" + "#" * 24 + "] 100% 24/24")
    log = io.StringIO()  # not a terminal: whole lines, the last one final
    p = Progress("images", total=3, unit="img", every_s=0.0, stream=log)
    for _ in range(3):
        p.update()
    p.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in log.getvalue() and lines[-1].endswith(" s)") and "in " in lines[-1]


def test_the_printed_mlflow_ui_line_pastes_into_a_shell():
    """Issue 26 #12: a path with spaces is quoted; a tracking server points at its own UI."""
    import shlex

    from vgs.sweep.cli import mlflow_ui_line

    line = mlflow_ui_line("sqlite:////tmp/my runs/it's/mlflow.db", "3")
    command = line.removeprefix("MLflow UI: ").split("   (then open")[0]
    assert shlex.split(command)[1:] == ["ui", "--backend-store-uri", "sqlite:////tmp/my runs/it's/mlflow.db"]
    server = mlflow_ui_line("http://bob:pw@mlflow.lab:5000", "3")
    assert server.startswith("MLflow UI: open http://bob:***@mlflow.lab:5000/#/experiments/3") and " ui " not in server

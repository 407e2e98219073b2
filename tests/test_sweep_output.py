"""The driver's progress lines and the library-noise filter."""

import logging

from vgs.sweep.output import NOISE, _DropNoise, progress_line, trials_done


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


def test_the_trial_counter_counts_against_the_whole_phase():
    """A searcher creates trials one at a time, and a resumed phase restores the ended ones: the
    counter's total is the phase's, never the trials Tune happens to hold (it printed "3/3" of 8)."""
    from types import SimpleNamespace as Trial

    ending = Trial(status="RUNNING")
    restored = [Trial(status="TERMINATED"), Trial(status="ERROR"), ending]
    assert trials_done(restored, ending, total=8) == "3/8"
    assert trials_done([ending], ending, total=8) == "1/8"
    # a phase that grew beyond its plan (Tune's own retries are the same trial) still reads sensibly
    assert trials_done([*restored, Trial(status="TERMINATED")], ending, total=2) == "4/4"


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

    line = mlflow_ui_line("sqlite:////tmp/my runs/it's/mlflow.db", "3", "abc")
    command = line.removeprefix("MLflow UI: ").split("   then open")[0]
    assert shlex.split(command)[1:] == ["ui", "--backend-store-uri", "sqlite:////tmp/my runs/it's/mlflow.db"]
    # the runs table (in the model-training view) and the parent run itself
    assert "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning" in line
    assert line.splitlines()[1].endswith(
        "parent run: http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    server = mlflow_ui_line("http://bob:pw@mlflow.lab:5000", "3")
    assert server.startswith("MLflow UI (the tracking server): http://bob:***@mlflow.lab:5000/#/experiments/3")
    assert " ui " not in server and "parent run" not in server


# Ray 2.60's report of a worker its memory monitor killed (trimmed of its tables)
RAY_OOM = """ray.exceptions.OutOfMemoryError: 1 worker(s) were killed due to the node running low on memory. \
Memory on the node (IP: 127.0.0.1, ID: c57f4e02) was 1.54GB used / 23.54GB limit (0.065557)
OOM kill reason: Memory usage 1656930304B exceeded threshold of 1263809152B (5.0% of 25276182528B limit)
Object store memory usage: [- objects spillable: 6
Refer to the documentation on how to address the out of memory issue: https://docs.ray.io/en/latest/"""


def test_a_trial_killed_for_memory_is_named_in_one_line():
    from vgs.sweep.trial_errors import error_reason

    reason = error_reason(RAY_OOM)
    assert reason == (
        "killed by Ray's out-of-memory monitor; the node had 1.54GB of 23.54GB in use, over Ray's threshold "
        "of 5.0% of 25276182528B: run fewer trials at once (max_concurrent in the sweep YAML) or smaller ones; "
        "RAY_memory_usage_threshold moves the threshold"
    )
    assert error_reason("Traceback ...\n  File x\nvgs.config.ConfigError: lower train.lr\n") == (
        "vgs.config.ConfigError: lower train.lr"
    )
    assert error_reason(None) is None

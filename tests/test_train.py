import math
import subprocess
import sys

import pytest
import torch
from conftest import LEARNING_RECIPE, tiny_config

from vgs.config import ConfigError, apply_overrides, base_config
from vgs.data.prepare import prepare
from vgs.metrics import chance_hit_rate, chance_recall_bound
from vgs.tasks.factory import build_model
from vgs.train import fit


def test_training_learns_beyond_chance(learning_corpus, tmp_path, threads, margin):
    # cpu-tiny's 32-px images with cpu-small's speech side (128 conv channels, N = 256, MFCCs
    # standardised per utterance, wsd schedule): 0.35-0.38 speech->image R@10 over seeds 0-3 and
    # under ATEN_CPU_CAPABILITY=default, where cpu-tiny as it is ranged 0.25-0.36 (docs/results.md)
    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {
            "data.root": str(learning_corpus),
            "data.speech_norm": "utterance",
            **LEARNING_RECIPE,
            "train.threads": threads,
        },
    )
    summary = fit(cfg, out_dir=tmp_path / "run")
    images = int(summary["sel_val_images"])
    assert images == 100
    # p < 0.001 against a model that knows nothing of the images, each image counted once however
    # many of its 5 captions hit (vgs.metrics.chance_recall_bound)
    bound = chance_recall_bound(images, chance_hit_rate(images, 10))
    margin.at_least("val s2i R@10", summary["sel_val_s2i_r10"], bound)
    captions = 5 * images
    margin.at_least(
        "val i2s R@10", summary["sel_val_i2s_r10"], chance_recall_bound(images, chance_hit_rate(captions, 10, own=5))
    )
    margin.at_most("train loss", summary["train_loss"], 0.3)  # from 0.4 (= 2 x margin) at initialisation


class _Interrupt(Exception):
    """Raised from the report callback, as Ray stops a trial between epochs."""


def _interrupt_after(epochs):
    def report(metrics, _checkpoint_dir):
        if metrics["epoch"] >= epochs:
            raise _Interrupt

    return report


def test_same_seed_same_result_and_resume_replays_exactly(tiny_corpus, tmp_path):
    cfg = tiny_config(tiny_corpus, **{"train.epochs": 2})
    data = prepare(cfg.data)
    straight = fit(cfg, out_dir=tmp_path / "a", data=data)
    again = fit(cfg, out_dir=tmp_path / "b", data=data)
    keys = [k for k in straight if k.startswith(("val_", "best_val_", "sel_val_")) or k in ("train_loss", "lr")]
    assert {k: again[k] for k in keys} == {k: straight[k] for k in keys}

    with pytest.raises(_Interrupt):
        fit(cfg, out_dir=tmp_path / "c", data=data, report=_interrupt_after(1))
    resumed = fit(cfg, out_dir=tmp_path / "c", resume=tmp_path / "c", data=data)
    assert resumed["epoch"] == 2
    assert {k: resumed[k] for k in keys} == {k: straight[k] for k in keys}


def test_a_sample_of_the_training_images_is_scored_every_epoch_and_never_selects(tiny_corpus, tmp_path):
    """train.eval_train_images (Mortazavi 2020 §5.2 compares schedulers on the training set): the same
    fixed sample of training images every epoch, as trainset_*; the validation score alone selects."""
    from vgs.data.batching import image_sample

    epochs = []
    cfg = tiny_config(tiny_corpus, **{"train.epochs": 2, "train.eval_train_images": 12})
    summary = fit(cfg, out_dir=tmp_path / "run", report=lambda m, _: epochs.append(m))
    assert [m["trainset_images"] for m in epochs] == [12.0, 12.0]
    assert all(0 <= m["trainset_s2i_r10"] <= 1 and m["trainset_s2i_medr"] >= 1 for m in epochs)
    assert summary["best_epoch"] == max(epochs, key=lambda m: m["val_s2i_r10"])["epoch"]
    assert not any(k.startswith("sel_trainset") or k.startswith("best_trainset") for k in summary)
    names = [f"img{i}" for i in range(100)]

    class Split:
        image_names = names

    assert image_sample(Split, 12, 0) == image_sample(Split, 12, 0) and len(image_sample(Split, 12, 0)) == 12
    assert image_sample(Split, 500, 0) == set(names)
    with pytest.raises(ConfigError, match="train.eval_train_images must be >= 0"):
        fit(tiny_config(tiny_corpus, **{"train.eval_train_images": -1}), out_dir=tmp_path / "bad")


def test_best_checkpoint_holds_state_dict_and_config(tiny_corpus, tmp_path):
    cfg = tiny_config(tiny_corpus, **{"train.epochs": 1, "train.test_at_end": True})
    summary = fit(cfg, out_dir=tmp_path / "run")
    assert {"test_s2i_r10", "test_i2s_r10"} <= set(summary)
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert state["config"]["model"]["latent"] == 128 and state["epoch"] == 1
    model = build_model(cfg.model, input_dim=40)
    model.load_state_dict(state["model"])


def test_a_config_that_cannot_fit_is_refused(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="data.image_crop"):
        fit(tiny_config(tiny_corpus, **{"data.image_crop": 64}), out_dir=tmp_path)


def test_cli_names_a_missing_corpus(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "vgs.train", "--data", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert r.returncode == 2 and f"corpus folder not found: {tmp_path / 'missing'}" in r.stderr


def test_cli_resume_without_a_last_pt_is_refused_instead_of_training_afresh(tiny_corpus, tmp_path, capsys):
    from vgs.train import main

    data = ["--base", "cpu-tiny", "--data", str(tiny_corpus)]
    assert main([*data, "--resume", "--out", str(tmp_path / "no-run")]) == 2
    assert f"--resume: {tmp_path / 'no-run' / 'last.pt'} does not exist" in capsys.readouterr().err
    assert main([*data, "--resume"]) == 2 and "it needs --out" in capsys.readouterr().err


def test_resume_keeps_the_runs_own_config_and_a_damaged_last_pt_is_named(tiny_corpus, tmp_path, capsys):
    """Issue 36 #8 and #9: `--resume` with another model gave a size-mismatch traceback, with another
    corpus, seed or rate it continued silently; a truncated or empty last.pt read "EOFError" without
    the path, and a trial's restart read the same file again."""
    import shutil

    from vgs.train import main

    cfg = tiny_config(tiny_corpus, **{"train.epochs": 2})
    with pytest.raises(_Interrupt):
        fit(cfg, out_dir=tmp_path / "run", report=_interrupt_after(1))
    shutil.copytree(tmp_path / "run", tmp_path / "cut")
    last = tmp_path / "run" / "last.pt"
    for extra, named in (
        (["model.latent=64"], "model.latent: given 64, saved 128"),
        (["--data", str(tmp_path)], f"data.root: given {str(tmp_path)!r}, saved {str(tiny_corpus)!r}"),
        (["--base", "cpu-small"], "model."),
    ):
        assert main(["--resume", "--out", str(tmp_path / "run"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"--resume continues {last} as it was started" in err and named in err, err
    # the same keys again are no change: it resumes, as with nothing given
    assert main(["--resume", "--out", str(tmp_path / "run"), "train.epochs=2", "--data", str(tiny_corpus)]) == 0
    assert torch.load(last, weights_only=True)["epoch"] == 2

    cut = tmp_path / "cut" / "last.pt"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    assert main(["--resume", "--out", str(tmp_path / "cut")]) == 2
    assert f"--resume: {cut} is truncated or empty" in capsys.readouterr().err
    # a trial (fit resuming from its checkpoint) starts again from epoch 1 instead of failing on it again
    summary = fit(cfg, out_dir=tmp_path / "cut", resume=tmp_path / "cut")
    assert summary["epoch"] == 2 and torch.load(cut, weights_only=True)["epoch"] == 2
    from vgs.checkpoint import CheckpointError, load

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'empty.pt'} cannot be read as a checkpoint \\(0 bytes"):
        load(tmp_path / "empty.pt")


def test_a_run_folder_that_cannot_be_made_is_named_before_any_corpus_work(tiny_corpus, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"the run's folder .*a-file/run: cannot make the folder \(Not a directory\)"):
        fit(tiny_config(tiny_corpus), out_dir=tmp_path / "a-file" / "run")


@pytest.mark.parametrize("name", ["calr", "calwr", "cyclic", "constant", "wsd"])
def test_learning_rate_schedules(name):
    from vgs.config import TrainConfig
    from vgs.schedules import make_scheduler

    cfg = TrainConfig(epochs=4, lr=1e-3, min_lr=1e-5, scheduler=name, calwr_t0=2, calwr_t_mult=1, cyclic_step_epochs=1)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    if name == "calr":  # one cosine from lr down to min_lr over all epochs
        assert lrs[0] == pytest.approx(1e-3) and all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 2e-5
    elif name == "calwr":  # warm restart after calwr_t0 epochs
        assert lrs[19] < 2e-5 and lrs[20] == pytest.approx(1e-3)
    elif name == "cyclic":  # triangular between min_lr and lr, one epoch up, one down
        assert lrs[0] == pytest.approx(1e-5) and lrs[10] == pytest.approx(1e-3) and lrs[20] == pytest.approx(1e-5)
    elif name == "wsd":  # full rate for the first 70% of the 40 steps, then a cosine down to min_lr
        assert lrs[:28] == pytest.approx([1e-3] * 28) and all(a > b for a, b in zip(lrs[28:], lrs[29:]))
        assert lrs[28] == pytest.approx(1e-3) and lrs[-1] < 5e-5
        cosine = [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * (k - 28) / 12)) for k in range(28, 40)]
        assert lrs[28:] == pytest.approx(cosine)
    else:
        assert set(lrs) == {1e-3}


def test_unknown_scheduler_is_refused():
    from vgs.config import TrainConfig
    from vgs.schedules import make_scheduler

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ConfigError, match="train.scheduler must be one of"):
        make_scheduler(opt, TrainConfig(scheduler="step"), 10)


def test_runs_started_in_the_same_second_get_their_own_folders(vgs_home):
    from vgs.checkpoint import new_run_dir

    folders = [new_run_dir() for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.is_dir() for f in folders)


def test_selected_epoch_scores_are_named_sel_not_best():
    from vgs.metric_names import selected_metrics

    # epoch 3 won on speech->image; its image->speech (0.30) is not image->speech's best over epochs
    best = {"epoch": 3, "val_r10": 0.5, "val_s2i_r10": 0.5, "val_i2s_r10": 0.30}
    got = selected_metrics(best, "val_r10")
    assert got == {
        "best_epoch": 3,
        "best_val_r10": 0.5,
        "sel_val_r10": 0.5,
        "sel_val_s2i_r10": 0.5,
        "sel_val_i2s_r10": 0.30,
    }
    assert not any(k.startswith("best_val_i2s") for k in got)


def test_restart_phase_splits_the_last_epochs_off():
    from vgs.schedules import with_restart

    assert with_restart([(1, 10)], 0) == [(1, 10)]
    assert with_restart([(1, 10)], 3) == [(1, 7), (8, 10)]
    assert with_restart([(1, 4), (5, 8)], 2) == [(1, 4), (5, 6), (7, 8)]  # pipe-seq: inside its last phase


def test_warm_second_run_halves_the_rate_from_the_best_epoch_and_resumes_exactly(tiny_corpus, tmp_path):
    cfg = tiny_config(
        tiny_corpus, **{"train.epochs": 3, "train.restart_epochs": 1, "train.scheduler": "constant", "train.lr": 2e-3}
    )
    data = prepare(cfg.data)
    lrs = []
    straight = fit(cfg, out_dir=tmp_path / "a", data=data, report=lambda m, _: lrs.append(m["lr"]))
    assert lrs == pytest.approx([2e-3, 2e-3, 1e-3])
    with pytest.raises(_Interrupt):
        fit(cfg, out_dir=tmp_path / "b", data=data, report=_interrupt_after(2))
    resumed = fit(cfg, out_dir=tmp_path / "b", resume=tmp_path / "b", data=data)
    assert resumed["val_s2i_r10"] == straight["val_s2i_r10"] and resumed["train_loss"] == straight["train_loss"]
    with pytest.raises(ConfigError, match="train.restart_epochs"):
        fit(apply_overrides(cfg, {"train.restart_epochs": 3}), out_dir=tmp_path / "c", data=data)


def test_a_last_pt_from_before_per_objective_optimizers_resumes_one_optimizer_and_names_the_way_for_several(tmp_path):
    import torch

    from vgs.checkpoint import restore_optimizers
    from vgs.config import ConfigError

    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    old = {"optimizer": opt.state_dict(), "scheduler": {"last_epoch": 4}}
    fresh = {"s2i": torch.optim.Adam(net.parameters(), lr=0.1)}
    assert restore_optimizers(fresh, old, tmp_path / "last.pt") == {"s2i": {"last_epoch": 4}}
    assert fresh["s2i"].state_dict()["state"][0]["step"] == 1
    two = {k: torch.optim.Adam(net.parameters(), lr=0.1) for k in ("s2i", "asr")}
    with pytest.raises(ConfigError, match="train.objective_optimizers=false"):
        restore_optimizers(two, old, tmp_path / "last.pt")

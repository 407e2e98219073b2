"""Every family of Mortazavi 2020 and Higy et al. 2020 trains end to end on the built-in corpus at tiny sizes and
reports its metrics; text conditions and pipe-seq's decoded training text behave as described."""

import json
import re

import numpy as np
import pytest
import torch
from conftest import tiny_config

from vgs.config import ConfigError, DataConfig, apply_overrides, base_config
from vgs.data.prepare import builtin_corpus_dir
from vgs.tasks import task_of
from vgs.train import fit

TINY = {
    "train.epochs": 1,
    "train.test_at_end": True,
    "train.batch_size": 32,
    "train.eval_batch_size": 64,
    "model.latent": 32,
    "model.text.layers": 1,
    "model.text.embed": 16,
    "model.asr.encoder_layers": 1,
    "model.asr.hidden": 16,
    "model.asr.attention": 16,
    "model.asr.embed": 8,
    "model.asr.beam": 2,
    "model.asr.max_chars": 40,
    "model.mtl.shared_layers": 1,
    "model.mtl.s2i_layers": 1,
    "model.mtl.objective_layers": 0,
    "model.match.shared_layers": 1,
    "model.match.s2i_layers": 1,
}

FAMILIES = "asr mtl-match mtl-transcribe mtl-translate pipe-ind pipe-seq slt text-image three-task".split()


def declared_metrics(cfg) -> set[str]:
    """What a run of `cfg` must report, from its Task's declaration: every validation score of an
    epoch, the same on test (train.test_at_end), and the selected epoch's beam_val_* where it decodes."""
    task = task_of(cfg.model)
    val = task.metric_names(cfg.model)
    out = {f"val_{m}" for m in val} | {f"test_{m}" for m in val}
    if task.decodes:
        out |= {f"beam_val_{m}" for m in val if m in ("cer", "wer", "bleu")}
    return out


class Stop(Exception):
    """Raised from a report callback: a run cut off after an epoch, to be resumed."""


def stop_after(epoch: int):
    def report(metrics, _):
        if metrics["epoch"] == epoch:
            raise Stop

    return report


def tiny(tiny_corpus, tmp_path, family, **extra):
    return tiny_config(tiny_corpus, **{"data.store": str(tmp_path / "s"), "model.family": family, **TINY, **extra})


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_and_reports_its_metrics(family, tiny_corpus, tmp_path):
    epochs = 2 if family == "pipe-seq" else 1
    cfg = tiny(tiny_corpus, tmp_path, family, **{"train.epochs": epochs})
    summary = fit(cfg, out_dir=tmp_path / "run")
    expected = declared_metrics(cfg)
    missing = expected - set(summary)
    assert not missing, f"{family} did not report {missing}"
    for k in expected:  # recalls and BLEU are fractions; error rates, median ranks and counts are not
        fraction = re.search(r"_r\d+$", k) or k.endswith("bleu")
        assert summary[k] >= 0 and (summary[k] <= 1 or not fraction), (k, summary[k])
    # the scores that name each family's task (the declaration above could lose one unnoticed)
    assert {"val_r10", "test_r10"} & set(summary) or family in ("asr", "slt")
    assert ("val_wer" in summary) == (family in ("asr", "pipe-ind", "pipe-seq", "mtl-transcribe"))
    assert ("val_bleu" in summary) == (family in ("slt", "mtl-translate"))
    assert ("val_s2t_r10" in summary) == (family in ("mtl-match", "three-task"))
    assert "examples" not in summary and "val_examples" not in summary
    # beam_val_*: the selected epoch decoded with model.asr.beam (2 here), apart from the greedy val_*
    assert any(k.startswith("beam_val_") for k in summary) == (
        family in ("asr", "slt", "pipe-ind", "pipe-seq", "mtl-transcribe", "mtl-translate")
    )
    if family == "pipe-seq":  # epoch 1 trains ASR, epoch 2 the text-image part on decoded speech
        decoded = json.loads((tmp_path / "run" / "decoded_train.json").read_text())
        assert len(decoded) == 240 * 5 and summary["train_t2i_loss"] > 0 and "train_asr_loss" not in summary


def test_text_families_refuse_a_missing_text_source(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="model.text.source must be transcript or translation"):
        fit(tiny(tiny_corpus, tmp_path, "text-image", **{"model.text.source": "subtitles"}), out_dir=tmp_path / "r")
    with pytest.raises(ConfigError, match="unknown model family 'mtl-dance'"):
        fit(tiny(tiny_corpus, tmp_path, "mtl-dance"), out_dir=tmp_path / "r")


def test_downsampled_text_limits_the_text_task_only(tiny_corpus, tmp_path):
    """With 10% of the text, mtl-transcribe still trains every speech-image batch each epoch
    (Higy et al.: the speech-image data defines the epoch; the ASR task cycles over its smaller
    data), so the speech-image batches do not depend on the text fraction."""
    every = {"train.captions_per_image": 0, "train.test_at_end": False, "train.epochs": 1}
    full = fit(tiny(tiny_corpus, tmp_path, "mtl-transcribe", **every), out_dir=tmp_path / "a")
    less = fit(
        tiny(tiny_corpus, tmp_path, "mtl-transcribe", **every, **{"data.text_fraction": 0.1}), out_dir=tmp_path / "b"
    )
    assert full["train_s2i_batches"] == less["train_s2i_batches"] >= 1200 // 32
    assert full["train_asr_batches"] == full["train_s2i_batches"]
    assert less["train_asr_batches"] == less["train_s2i_batches"]  # the text task repeats, it does not end the epoch


def test_epoch_rule_first_cycles_the_shorter_task_and_shortest_stops_at_it():
    """epoch_plan under both rules, on a split whose text covers a third of the captions."""
    import numpy as np

    from vgs.config import apply_overrides
    from vgs.training_data import epoch_plan

    class Split:  # the two things epoch_plan asks of a split
        text_captions = np.arange(0, 60, 3)

        def epoch_batches(self, rng, batch_size, captions_per_image=0, allowed=None, any_images=False):
            pool = rng.permutation(np.arange(60) if allowed is None else allowed)
            return [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]

    cfg = apply_overrides(base_config("cpu-tiny"), {"train.batch_size": 10})
    objectives = ("s2i", "asr")  # asr trains on captions with text only
    plan = epoch_plan(objectives, "first", {"s2i": Split(), "asr": Split()}, cfg, 1, np.random.default_rng(0))
    tasks = [t for t, _ in plan]
    assert tasks.count("s2i") == tasks.count("asr") == 6 and tasks[:4] == ["s2i", "asr", "s2i", "asr"]
    asr = np.concatenate([b for t, b in plan if t == "asr"])
    assert set(asr) == set(Split.text_captions) and len(asr) == 60  # its 20 captions, three times over
    assert not np.array_equal(asr[:20], asr[20:40])  # each pass in a new order
    plan = epoch_plan(objectives, "shortest", {"s2i": Split(), "asr": Split()}, cfg, 1, np.random.default_rng(0))
    assert [t for t, _ in plan].count("s2i") == 2


def test_three_task_ablations_and_non_aligned_speech_text_data(tiny_corpus, tmp_path, vgs_home):
    """Table 1 of Chrupała 2019: the 1-task row trains speech/image only; NON-ALIGNED takes the
    speech/text task's data from a second, disjoint built-in corpus."""
    one = fit(
        tiny(
            tiny_corpus,
            tmp_path,
            "three-task",
            **{"model.three.text_layers": -1, "model.three.s2t": -1, "model.three.t2s": -1, "model.three.t2i": -1},
        ),
        out_dir=tmp_path / "one",
    )
    assert "train_s2i_batches" in one and "train_s2t_batches" not in one and "val_s2t_r10" not in one
    with pytest.raises(ConfigError, match="ablated together"):
        fit(tiny(tiny_corpus, tmp_path, "three-task", **{"model.three.s2t": -1}), out_dir=tmp_path / "x")
    apart = fit(
        tiny(
            tiny_corpus,
            tmp_path,
            "three-task",
            **{
                "data.speech_text": "nonaligned",
                "data.speech_text_root": "builtin",
                "data.builtin_images": 80,
                "data.builtin_test": 32,
            },
        ),
        out_dir=tmp_path / "apart",
    )
    second = DataConfig(builtin_images=80, builtin_seed=1, builtin_test=32)
    assert builtin_corpus_dir(second).parent == vgs_home / "corpora"
    assert (builtin_corpus_dir(second) / "corpus.json").exists()
    # 40 training images x 5 captions of the second corpus = 200 pairs: 7 batches of 32 at most
    assert apart["train_s2t_batches"] == apart["train_s2i_batches"] <= 7 and apart["val_s2t_r10"] >= 0


def test_analysis_metrics_on_request(tiny_corpus, tmp_path, margin):
    summary = fit(
        tiny(tiny_corpus, tmp_path, "coembed", **{"train.analysis": True, "train.test_at_end": False}),
        out_dir=tmp_path / "a",
    )
    assert 0 <= summary["analysis_speaker_acc"] <= 1
    for k in ("rsa_text", "rsa_image", "rsa_mfcc", "image_rsa_mfcc", "image_rsa_text"):  # Chrupała 2019 Table 4
        assert -1 <= summary[f"analysis_{k}"] <= 1, k
    assert not any(k.startswith("analysis_s2t_") for k in summary)  # no speech->text branch
    # Chrupała 2019 Table 5 on the built-in corpus's phoneme timings: MFCC frames decode well above the
    # most frequent phoneme's share (0.06 of the frames: 58 phonemes in these 200 captions)
    assert all(0 <= summary[f"analysis_phoneme_acc{k}"] <= 1 for k in ("", "_random", "_mfcc"))
    margin.at_least("phoneme probe accuracy on MFCC frames", summary["analysis_phoneme_acc_mfcc"], 0.2)
    three = fit(
        tiny(tiny_corpus, tmp_path, "three-task", **{"train.analysis": True, "train.test_at_end": False}),
        out_dir=tmp_path / "b",
    )
    assert all(-1 <= three[f"analysis_s2t_rsa_{k}"] <= 1 for k in ("mfcc", "text", "image"))


def test_pipe_ind_keeps_each_parts_own_best_epoch(tiny_corpus, tmp_path):
    """Higy et al. 2020 train pipe-ind's parts "independently from the other": the recognizer of its
    best validation WER and the text-image part of its best R@10 from ground-truth text make the
    pipeline, which is then validated and tested (best.pt holds exactly those parts)."""
    from vgs.checkpoint import load

    cfg = tiny(tiny_corpus, tmp_path, "pipe-ind", **{"train.epochs": 3})
    epochs = []
    summary = fit(cfg, out_dir=tmp_path / "run", report=lambda m, _: epochs.append(m))
    wer = [m["val_wer"] for m in epochs]
    t2i = [m["val_t2i_r10"] for m in epochs]
    assert summary["recognizer_best_epoch"] == 1 + wer.index(min(wer))  # the first of equals is kept
    assert summary["text_image_best_epoch"] == 1 + t2i.index(max(t2i))
    assert summary["best_epoch"] == 3 and "test_s2i_r10" in summary
    best = load(tmp_path / "run" / "best.pt", torch.device("cpu"))["model"]
    for file, part in (("asr_best.pt", "recognizer"), ("t2i_best.pt", "text_image")):
        kept = torch.load(tmp_path / "run" / file, weights_only=True)[part]
        assert all(torch.equal(best[f"{part}.{k}"], v) for k, v in kept.items()), part


def test_pipe_seq_phases_each_get_their_own_schedule_and_resume_in_place(tiny_corpus, tmp_path):
    """pipe-seq trains ASR for model.pipeline.asr_epochs, then the text-image part: two phases, each with
    its own cosine schedule from train.lr, so epoch 1 (half-way through the ASR phase) and epoch 3
    (half-way through the text-image phase) end at the same rate; a resume mid-phase keeps it."""
    from vgs.schedules import training_phases
    from vgs.tasks import task_of

    cfg = tiny(
        tiny_corpus,
        tmp_path,
        "pipe-seq",
        **{"train.epochs": 4, "model.pipeline.asr_epochs": 2, "train.scheduler": "calr", "train.test_at_end": False},
    )

    def phases(c):
        return training_phases(lambda epoch: task_of(c.model).objectives_at(c.model, 4, epoch), 4)

    assert phases(cfg) == [(1, 2), (3, 4)]
    assert phases(tiny(tiny_corpus, tmp_path, "pipe-ind")) == [(1, 4)]
    history = []
    fit(cfg, report=lambda m, _: history.append(m), out_dir=tmp_path / "seq")
    lrs = [m["lr"] for m in history]
    assert lrs[0] == pytest.approx(lrs[2], rel=1e-6) and lrs[1] == pytest.approx(lrs[3], rel=1e-6)
    assert lrs[1] < 0.01 * lrs[0]  # each phase anneals to min_lr by its own end
    # the text-image phase starts from (and decodes with) the ASR phase's best epoch by val WER
    import torch

    kept = torch.load(tmp_path / "seq" / "asr_best.pt", weights_only=True)
    wers = [m["val_wer"] for m in history[:2]]
    assert kept["score"] == pytest.approx(min(wers)) and kept["epoch"] == 1 + wers.index(min(wers))
    last = torch.load(tmp_path / "seq" / "last.pt", weights_only=True)["model"]
    for k, v in kept["recognizer"].items():  # the text-image phase did not train it: still the kept one
        torch.testing.assert_close(last[f"recognizer.{k}"], v)

    with pytest.raises(Stop):
        fit(cfg, report=stop_after(3), out_dir=tmp_path / "cut")
    rest = []
    fit(cfg, report=lambda m, _: rest.append(m["lr"]), out_dir=tmp_path / "cut", resume=tmp_path / "cut")
    assert rest == pytest.approx(lrs[3:], rel=1e-6)


def test_pipe_seq_asr_phase_ends_once_val_wer_has_converged(tiny_corpus, tmp_path):
    """model.pipeline.asr_patience: at a learning rate too small to change anything, epoch 2 does not
    improve on epoch 1's WER, so with patience 1 the ASR phase (planned for 4 epochs) ends after
    epoch 2 and the text-image part trains epochs 3-5; the run folder records it for a resume."""
    cfg = tiny(
        tiny_corpus,
        tmp_path,
        "pipe-seq",
        **{
            "train.epochs": 5,
            "model.pipeline.asr_epochs": 4,
            "model.pipeline.asr_patience": 1,
            "train.lr": 1e-9,
            "train.scheduler": "constant",
            "train.test_at_end": False,
        },
    )
    history = []
    fit(cfg, report=lambda m, _: history.append(m), out_dir=tmp_path / "seq")
    assert history[0]["val_wer"] == history[1]["val_wer"]
    assert [("train_asr_batches" in m, "train_t2i_batches" in m) for m in history] == [(True, False)] * 2 + [
        (False, True)
    ] * 3
    assert json.loads((tmp_path / "seq" / "asr_phase.json").read_text()) == {"ended_after": 2, "best_epoch": 1}


def test_multitask_objectives_step_with_their_own_adam_and_resume_exactly(tiny_corpus, tmp_path):
    """train.objective_optimizers (the papers' code: an Adam per task): the shared encoder has moments
    in both optimizers, the image encoder only in speech-image's (the ASR task never touches it);
    a resumed run replays the straight one; false gives one Adam for every objective."""
    import torch

    cfg = tiny(tiny_corpus, tmp_path, "mtl-transcribe", **{"train.epochs": 2, "train.test_at_end": False})
    straight = fit(cfg, out_dir=tmp_path / "a")
    state = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert set(state["optimizers"]) == {"s2i", "asr"} and set(state["schedulers"]) == {"s2i", "asr"}
    names = list(state["model"])  # Adam's state is keyed by position in model.parameters()
    params = [n for n in names if not n.endswith(("running_mean", "running_var", "num_batches_tracked"))]

    def moved(opt: str, prefix: str) -> bool:
        st = state["optimizers"][opt]["state"]
        return any(
            float(st[i]["exp_avg"].abs().sum()) > 0 for i, n in enumerate(params) if n.startswith(prefix) and i in st
        )

    assert moved("s2i", "shared.") and moved("asr", "shared.")
    assert moved("s2i", "image.") and not moved("asr", "image.") and not moved("s2i", "decoder.")

    with pytest.raises(Stop):
        fit(cfg, report=stop_after(1), out_dir=tmp_path / "b")
    resumed = fit(cfg, out_dir=tmp_path / "b", resume=tmp_path / "b")
    keys = [k for k in straight if k.startswith("val_") or k in ("train_loss", "lr")]
    assert {k: resumed[k] for k in keys} == {k: straight[k] for k in keys}
    one = apply_overrides(cfg, {"train.objective_optimizers": False, "train.epochs": 1})
    fit(one, out_dir=tmp_path / "one")
    assert set(torch.load(tmp_path / "one" / "last.pt", weights_only=True)["optimizers"]) == {"all"}


def test_analyses_as_chrupala_2019_runs_them(tiny_corpus, tmp_path):
    """sharing at paper size: the probes and RSA on the whole validation set (train.analysis_captions=0)
    and Table 4's image space from "the features of the image" (fixed features), not the learned
    image embedding, which stays as analysis_rsa_image_embedding."""
    from vgs.analysis import analyse
    from vgs.data.flickr8k import read_flickr8k
    from vgs.evaluate import load_best
    from vgs.metrics import cosine_similarity, rsa
    from vgs.training_data import training_data

    names = sorted({u.image for u in read_flickr8k(tiny_corpus).utterances})
    feats = tmp_path / "vgg16.npz"
    rng = np.random.default_rng(0)
    np.savez(feats, names=np.array(names), features=rng.normal(size=(len(names), 64)).astype(np.float32))
    cfg = tiny(
        tiny_corpus,
        tmp_path,
        "coembed",
        **{"data.image_features": str(feats), "train.test_at_end": False, "model.image.encoder": "features"},
    )
    fit(cfg, out_dir=tmp_path / "r")
    data = training_data(cfg)
    model = load_best(
        tmp_path / "r" / "best.pt",
        cfg,
        data.data.speech.dim,
        data.data.images.feature_dim,
        torch.device("cpu"),
        data.vocab,
    )
    everything = analyse(model, data.val, cfg, torch.device("cpu"), limit=0)
    assert everything["analysis_rsa_image"] != everything["analysis_rsa_image_embedding"]
    # the image space is the fixed features' own similarity over every validation caption
    split = data.val
    captions = np.arange(len(split))
    fixed = cosine_similarity(split.pixels(split.image_of_caption[captions], 32).numpy())
    assert everything["analysis_image_rsa_mfcc"] == pytest.approx(
        rsa(fixed, cosine_similarity(np.stack([split.speech.normalised(split.utt_ids[c]).mean(0) for c in captions])))
    )
    assert (
        analyse(model, data.val, cfg, torch.device("cpu"), limit=20)["analysis_rsa_text"]
        != everything["analysis_rsa_text"]
    )  # a sample is not the whole set

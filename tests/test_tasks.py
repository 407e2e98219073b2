"""The Task registry (timm-style tests over every registered family): each builds, declares the
metric names its evaluation really produces, refuses configuration keys it does not read, and a
new family is one Task plus its registry line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from vgs import metric_names
from vgs.config import ConfigError, ModelConfig, apply_overrides
from vgs.losses import Loss, contrastive
from vgs.models.families import Family
from vgs.models.image import ImageEncoder
from vgs.tasks import TASKS, Task, task_of
from vgs.tasks.factory import cli_config

ROOT = Path(__file__).resolve().parents[1]


def family_config(family: str, corpus: Path):
    return tiny_config(
        corpus,
        **{
            "model.family": family,
            "train.epochs": 1,
            "train.batch_size": 16,
            "model.asr.encoder_layers": 1,
            "model.asr.hidden": 16,
            "model.asr.embed": 8,
            "model.asr.attention": 16,
            "model.asr.max_chars": 40,
            "model.mtl.shared_layers": 1,
            "model.mtl.s2i_layers": 1,
            "model.mtl.objective_layers": 1,
            "model.match.shared_layers": 1,
            "model.match.s2i_layers": 1,
            "model.match.objective_layers": 0,
            "model.text.embed": 8,
            "model.text.layers": 1,
            "model.three.speech_layers": 1,
            "model.three.text_layers": 1,
            "model.three.s2i": 0,
            "model.three.s2t": 0,
            "model.three.t2s": 0,
            "model.three.t2i": 0,
        },
    )


@pytest.mark.parametrize("family", sorted(TASKS))
def test_every_family_evaluates_exactly_the_metrics_it_declares(family, tiny_corpus):
    """An untrained network of each family on the tiny corpus's validation split: evaluate's
    scores are the Task's metric_names, every one in the shared vocabulary, and the selection
    metric is among them."""
    from vgs.evaluate import evaluate
    from vgs.tasks.factory import build_model
    from vgs.training_data import training_data

    cfg = family_config(family, tiny_corpus)
    task = task_of(cfg.model)
    torch.manual_seed(0)
    td = training_data(cfg)
    model = build_model(
        cfg.model, td.data.speech.dim, td.data.images.feature_dim, len(td.vocab) if td.vocab else 0, 1, td.max_chars
    )
    result = evaluate(model, td.val, cfg, torch.device("cpu"), td.vocab)
    assert sorted(result.scores) == sorted(task.metric_names(cfg.model))
    assert all(np.isfinite(v) for v in result.scores.values())
    metric, mode = task.selection(cfg.model)
    assert metric in metric_names.SELECTABLE and metric_names.base_name(metric) in result.scores
    assert (mode == "max") == metric_names.higher_is_better(metric)
    assert bool(result.examples) == task.decodes
    assert set(task.objectives(cfg.model)) <= set(model.objectives)


def test_a_pipeline_decodes_its_speech_once_for_both_queries_and_wer(tiny_corpus):
    """Pipelines rank images by the recognizer's text and score its WER: evaluation decodes each
    validation utterance once, and ranks exactly as decoding every query afresh (model.query)."""
    from vgs.evaluate import evaluate
    from vgs.inference import embed_images, embed_queries
    from vgs.metrics import retrieval
    from vgs.tasks.factory import build_model
    from vgs.training_data import training_data

    cfg, cpu = family_config("pipe-ind", tiny_corpus), torch.device("cpu")
    torch.manual_seed(0)
    td = training_data(cfg)
    model = build_model(cfg.model, td.data.speech.dim, td.data.images.feature_dim, len(td.vocab), 1, td.max_chars)
    decoded, transcribe = [], model.transcribe
    model.transcribe = lambda batch, beam=1: decoded.append(len(batch["lengths"])) or transcribe(batch, beam)
    result = evaluate(model, td.val, cfg, cpu, td.vocab)
    assert sum(decoded) == len(td.val) and "wer" in result.scores
    image_rows, own = np.unique(td.val.image_of_caption, return_inverse=True)
    with torch.no_grad():
        queries = embed_queries(model, td.val, cfg, cpu, np.arange(len(td.val)))
        images = embed_images(model, td.val, cfg, cpu, image_rows)
    assert sum(decoded) == 2 * len(td.val)
    expected = retrieval(queries, images, own, "s2i", "i2s")
    assert {k: result.scores[k] for k in expected} == pytest.approx(expected)


def test_train_and_evaluate_name_no_family():
    """The training loop and evaluation run whatever the Task declares: no family name in them."""
    for path in ("vgs/train.py", "vgs/evaluate.py", "vgs/training_data.py"):
        text = (ROOT / path).read_text()
        found = [f for f in TASKS if re.search(r"(?<![\w.-])" + re.escape(f) + r"(?![\w-])", text)]
        assert not found, f"{path} names {found}"
    assert len((ROOT / "vgs/train.py").read_text().splitlines()) < 300


def test_a_key_of_another_family_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"model\.asr\.hidden: not a setting of model\.family=coembed"):
        cli_config("cpu-small", ["model.asr.hidden=64"])
    with pytest.raises(ConfigError, match=r"model\.mtl\.asr_epochs.*pipe-ind"):
        cli_config("cpu-small", ["model.family=pipe-ind", "model.mtl.asr_epochs=2"])
    assert cli_config("cpu-small", ["model.family=pipe-seq", "model.mtl.asr_epochs=2"]).model.pipeline.asr_epochs == 2
    assert cli_config("cpu-small", ["model.family=three-task", "model.text.embed=16"]).model.text.embed == 16
    with pytest.raises(ConfigError, match="unknown model family 'nope'"):
        cli_config("cpu-small", ["model.family=nope"])


def test_a_sweep_whose_cells_choose_the_family_checks_keys_against_all_of_them(tmp_path):
    from vgs.search_spaces.checks import validate
    from vgs.search_spaces.spec import load

    spec = load("pipeline_vs_mtl")
    spec.base_config({"model.asr.hidden": 64})  # read by the pipelines and mtl-transcribe: fine
    with pytest.raises(ConfigError, match=r"model\.three\.s2i: not a setting of any of this sweep's families"):
        spec.base_config({"model.three.s2i": 1})
    path = tmp_path / "bad.yaml"  # a variant that sets a key its own family does not read
    path.write_text(
        "variants:\n  model:\n    a: {model.family: text-image}\n"
        "    b: {model.family: asr, model.text.layers: 1}\nspace: {variant.model: {choice: [a, b]}}\n"
    )
    with pytest.raises(
        ConfigError, match=r"variants\.model\.b: model\.text\.layers: not a setting of model\.family=asr"
    ):
        validate(load(str(path)))


def test_a_new_family_is_one_task_and_its_registry_line(tiny_corpus, tmp_path, monkeypatch):
    """The README's example: the Mortazavi 2020 network, selected by image->speech recall."""
    from vgs.tasks.speech_image import SpeechImage
    from vgs.train import fit

    class SpeechImageByImageQueries(SpeechImage):
        family = "speech-image-i2s"

        def selection(self, cfg: ModelConfig) -> tuple[str, str]:
            return "val_i2s_r10", "max"

    monkeypatch.setitem(TASKS, "speech-image-i2s", SpeechImageByImageQueries())
    cfg = apply_overrides(family_config("speech-image-i2s", tiny_corpus), {"train.test_at_end": False})
    summary = fit(cfg, out_dir=tmp_path / "run")
    assert summary["best_val_i2s_r10"] == summary["sel_val_i2s_r10"] and summary["val_images"] > 0
    assert summary["train_s2i_batches"] > 0


class MeanPoolNet(Family):
    """docs/model-families.md's example of a new family: speech frames projected and averaged over
    time (no GRU, no attention), the DenseNet for images, the all-negatives hinge between them."""

    objectives = ("s2i",)

    def __init__(self, cfg: ModelConfig, input_dim: int, image_dim: int, vocab_size: int):
        super().__init__()
        self.project = torch.nn.Linear(input_dim, cfg.latent)
        self.image = ImageEncoder(cfg.image, cfg.latent, image_dim)

    def query(self, batch: dict, beam: int = 1) -> torch.Tensor:
        frames, lengths = batch["speech"], batch["lengths"]
        kept = (torch.arange(frames.size(1), device=frames.device)[None] < lengths[:, None]).unsqueeze(-1)
        mean = (self.project(frames) * kept).sum(1) / lengths[:, None]
        return torch.nn.functional.normalize(mean, dim=-1)

    def objective(self, batch: dict, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        return {"s2i": contrastive(self.query(batch), self.image(batch["pixels"]), loss, batch["image_ids"])}


class MeanPool(Task):
    family = "mean-pool"
    sections = ("image",)
    network = MeanPoolNet

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("s2i",)

    def model_name(self, cfg: ModelConfig) -> str:
        return f"meanpool-A{cfg.latent}"


def test_a_new_network_is_one_task_and_its_registry_line(tiny_corpus, tmp_path, monkeypatch):
    """The docs' example of adding a family: a new network (MeanPoolNet) and its Task train and evaluate
    through the generic loop, and satisfy the family contract."""
    from vgs.models.contract import RanksImages, Trains
    from vgs.train import fit

    monkeypatch.setitem(TASKS, "mean-pool", MeanPool())
    cfg = apply_overrides(family_config("mean-pool", tiny_corpus), {"train.test_at_end": False})
    summary = fit(cfg, out_dir=tmp_path / "run")
    assert summary["best_val_r10"] == summary["sel_val_r10"] == summary["sel_val_s2i_r10"] > 0
    assert summary["train_s2i_batches"] > 0
    assert isinstance(MeanPoolNet(cfg.model, 40, 0, 0), Trains) and isinstance(
        MeanPoolNet(cfg.model, 40, 0, 0), RanksImages
    )


def test_metric_vocabulary():
    assert metric_names.base_name("sel_val_s2i_r10") == "s2i_r10"
    assert metric_names.base_name("best_val_wer") == "wer" and metric_names.base_name("lr") == "lr"
    assert metric_names.retrieval_names("t2i") == (
        "t2i_r1",
        "t2i_r5",
        "t2i_r10",
        "t2i_medr",
        "i2t_r1",
        "i2t_r5",
        "i2t_r10",
        "i2t_medr",
    )
    assert metric_names.retrieval_names("s2t") == ("s2t_r1", "s2t_r5", "s2t_r10", "s2t_medr")
    assert not metric_names.higher_is_better("val_s2i_medr") and not metric_names.higher_is_better("test_wer")
    assert all(metric_names.VAL + m in metric_names.SELECTABLE for m in metric_names.TABLE)
    with pytest.raises(ValueError, match="unknown retrieval direction"):
        metric_names.ranking("x2y")


def test_dry_run_plans_each_phase_of_a_two_phase_family(tiny_corpus):
    """pipe-seq's plan: ASR batches in its first phase, text-image batches in its second."""
    from vgs.sweep.dry_run import plan_cell

    cfg = apply_overrides(family_config("pipe-seq", tiny_corpus), {"train.epochs": 4, "model.pipeline.asr_epochs": 1})
    plan = plan_cell(cfg, {})
    assert [p["epochs"] for p in plan["phases"]] == [[1, 1], [2, 4]]
    assert list(plan["phases"][0]["batches_per_epoch"]) == ["asr"] and list(plan["phases"][1]["batches_per_epoch"]) == [
        "t2i"
    ]
    # its text-image part trains on all the training speech, decoded, however little text the ASR had
    less = plan_cell(apply_overrides(cfg, {"data.text_fraction": 0.1}), {})
    assert less["phases"][0]["batches_per_epoch"]["asr"] < plan["phases"][0]["batches_per_epoch"]["asr"]
    assert less["phases"][1]["batches_per_epoch"]["t2i"] == plan["phases"][1]["batches_per_epoch"]["t2i"]
    # evaluation priced beside training: every epoch's validation decoded at val_beam, the end's
    # test and wide-beam validation, and the training speech decoded once for the second phase
    work, val = plan["evaluation"], 200  # tiny corpus: 40 validation images x 5 captions
    asr = cfg.model.asr
    train = plan["phases"][0]["samples_per_epoch"]
    assert work["decoded"] >= val * asr.val_beam * 4 + val * asr.beam + train * asr.beam
    assert work["forward"] >= (val + 40) * 4
    assert (plan["batch_size"], plan["schedule"]) == (cfg.train.batch_size, f"{cfg.train.scheduler} {cfg.train.lr:g}")


@pytest.mark.parametrize("family", sorted(TASKS))
def test_every_network_provides_what_its_task_declares(family):
    """The contract (vgs.models.contract) against each Task's declaration, on the meta device."""
    from vgs.analysis import analyses_apply
    from vgs.models.contract import EncodesSpeech, MatchesText, RanksImages, Trains, Transcribes
    from vgs.tasks.factory import build_model

    task, cfg = TASKS[family], ModelConfig(family=family)
    with torch.device("meta"):
        net = build_model(cfg, 40, 0, 30)
    assert isinstance(net, Trains) and set(task.objectives(cfg)) <= set(net.objectives)
    if task.image_queries is not None:
        assert isinstance(net, RanksImages)
    if task.decodes:
        assert isinstance(net, Transcribes)
    if task.ranks_speech_text(cfg):
        assert isinstance(net, MatchesText)
    if analyses_apply(task):
        assert isinstance(net, EncodesSpeech)


def test_hidden_size_cells_of_one_family_have_distinct_names():
    """Higy et al. 2020 Table 5 varies the multitask encoders' width (model.asr.hidden): its three
    mtl-transcribe cells were all named mtl-transcribe-4.1.1A2048."""
    from vgs.search_spaces.model import trial_overrides
    from vgs.search_spaces.spec import load
    from vgs.sweep.dry_run import sweep_cells
    from vgs.tasks.factory import model_name

    spec = load("hidden_size", "paper")
    cells, _ = sweep_cells(spec)
    names = {model_name(spec.base_config(cell=trial_overrides(c, spec.seeds, spec.variants)).model) for c in cells}
    assert {"mtl-transcribe-4.1.1H512A2048", "mtl-transcribe-4.1.1H768A2048", "mtl-transcribe-4.1.1H1024A2048"} <= names
    assert len(names) == len(cells) == 7

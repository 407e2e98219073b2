"""pipe-ind / pipe-seq (Higy et al. 2020 §3.1.3, §3.2.2): ASR/SLT, then text-image on its output; images
are ranked from speech through the recognizer's beam-decoded text.

pipe-ind trains both parts at once on ground-truth text, and, as the paper trains each "independently
from the other", each part keeps its own best epoch: the recognizer by validation WER (BLEU for
SLT), the text-image part by validation R@10 from ground-truth text (val_t2i_*); the pipeline of
the two is validated and tested at the end.  pipe-seq trains the recognizer first
(model.pipeline.asr_epochs, default half the epochs; with model.pipeline.asr_patience it stops earlier,
once validation WER has converged), keeps the recognizer of that phase's best epoch by
validation WER (BLEU for SLT), then trains the text-image part on the training speech decoded
with it (beam model.asr.beam): two phases, each with its own learning-rate schedule.
"""

from __future__ import annotations

import copy
import json
import time
from typing import cast

import numpy as np
import torch

from vgs import metric_names as names
from vgs.checkpoint import save
from vgs.config import ModelConfig
from vgs.data.text import EOS
from vgs.inference import decode_captions
from vgs.log import get_logger
from vgs.models.families import Pipeline as PipelineNet
from vgs.tasks.base import Run, Task

log = get_logger(__name__)

DECODED_TRAIN = "decoded_train.json"  # pipe-seq: the training speech as its recognizer decodes it
ASR_BEST = "asr_best.pt"  # pipe-seq: the recognizer of its ASR/SLT phase's best epoch
ASR_ENDED = "asr_phase.json"  # pipe-seq: the epoch its ASR/SLT phase converged at (asr_patience)
T2I_BEST = "t2i_best.pt"  # pipe-ind: the text-image part of its own best epoch (val_t2i_r10)


def recognition_score(val: dict[str, float]) -> tuple[str, float, float]:
    """(metric, score, sign) the recognizer is selected by: WER (lower is better) or BLEU."""
    return ("val_wer", val["val_wer"], -1.0) if "val_wer" in val else ("val_bleu", val["val_bleu"], 1.0)


def keep_better(path, part: str, module: torch.nn.Module, key: str, score: float, sign: float, epoch: int):
    """Save `module`'s weights to `path` (under `part`) when `score` beats the one kept there (sign +1:
    higher is better).  Returns (whether it did, what is kept now)."""
    # memory-mapped: the kept score is read without reading the weights (a paper-size part is ~100 MB)
    kept = torch.load(path, weights_only=True, mmap=True) if path.exists() else None
    if kept is not None and sign * score <= sign * kept["score"]:
        return False, kept
    kept = {part: module.state_dict(), "score": float(score), "epoch": epoch, "metric": key}
    save(path, kept)
    return True, kept


class Pipeline(Task):
    sections: tuple[str, ...] = ("speech", "asr", "text", "image")
    network = PipelineNet
    text = "config"
    decodes = True
    queries_decode = True
    selects_parts = True  # pipe-ind: each part its own best epoch (scored on ground-truth text too)
    run_files: tuple[str, ...] = (ASR_BEST, T2I_BEST)

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        return ("asr", "t2i")

    def metric_names(self, cfg: ModelConfig) -> tuple[str, ...]:
        return super().metric_names(cfg) + (names.retrieval_names("t2i") if self.selects_parts else ())

    def after_validation(self, run: Run, epoch: int, val: dict[str, float]) -> bool:
        """Each part's own best epoch so far, kept in the run folder."""
        net = cast(PipelineNet, run.model)
        keep_better(run.out / ASR_BEST, "recognizer", net.recognizer, *recognition_score(val), epoch)
        keep_better(run.out / T2I_BEST, "text_image", net.text_image, "val_t2i_r10", val["val_t2i_r10"], 1.0, epoch)
        return False

    def compose_best(self, run: Run, epoch: int) -> dict[str, float]:
        """At the last epoch: the recognizer and the text-image part of their own best epochs."""
        if not self.selects_parts or epoch != run.cfg.train.epochs:
            return {}
        chosen = {}
        for path, part in ((ASR_BEST, "recognizer"), (T2I_BEST, "text_image")):
            state = torch.load(run.out / path, map_location=run.device, weights_only=True)
            getattr(run.model, part).load_state_dict(state[part])
            chosen[f"{part}_best_epoch"] = float(state["epoch"])
        log.info(
            f"pipe-ind: the recognizer of epoch {chosen['recognizer_best_epoch']:.0f} and the text-image part "
            f"of epoch {chosen['text_image_best_epoch']:.0f}, each its own best, make the pipeline"
        )
        return chosen

    def model_name(self, cfg: ModelConfig) -> str:
        return f"{self.family}-E{cfg.asr.encoder_layers}H{cfg.asr.hidden}-T{cfg.text.layers}A{cfg.latent}"


class SequentialPipeline(Pipeline):
    family = "pipe-seq"
    sections = Pipeline.sections + ("pipeline",)
    run_files = (DECODED_TRAIN, ASR_BEST, ASR_ENDED)
    selects_parts = False  # its phases select: the ASR phase's best recognizer, then the loop's best epoch

    @staticmethod
    def asr_epochs(cfg: ModelConfig, epochs: int, run: Run | None = None) -> int:
        """The ASR phase's length: model.pipeline.asr_epochs (default half), or fewer where it converged
        earlier (model.pipeline.asr_patience; recorded in the run folder, so a resume knows it)."""
        planned = cfg.pipeline.asr_epochs or max(1, epochs // 2)
        if run is not None and (run.out / ASR_ENDED).exists():
            return min(planned, json.loads((run.out / ASR_ENDED).read_text())["ended_after"])
        return planned

    def objectives_at(self, cfg: ModelConfig, epochs: int, epoch: int, run: Run | None = None) -> tuple[str, ...]:
        return ("asr",) if epoch <= self.asr_epochs(cfg, epochs, run) else ("t2i",)

    def before_epoch(self, run: Run, epoch: int) -> None:
        """At the text-image phase: start from the ASR phase's best recognizer, and train on the
        training speech decoded with it."""
        cfg = run.cfg
        if self.objectives_at(cfg.model, cfg.train.epochs, epoch, run) != ("t2i",):
            return
        if epoch == self.asr_epochs(cfg.model, cfg.train.epochs, run) + 1 and (run.out / ASR_BEST).exists():
            state = torch.load(run.out / ASR_BEST, map_location=run.device, weights_only=True)
            cast(PipelineNet, run.model).recognizer.load_state_dict(state["recognizer"])
        if not getattr(run.splits["t2i"], "decoded", False):
            run.splits["t2i"] = decoded_split(run)

    def planned_splits(self, cfg: ModelConfig, splits: dict, objectives: tuple[str, ...]) -> dict:
        """The text-image phase trains on every training utterance, decoded (before_epoch), however
        little of the text the recognizer was trained on (data.text_fraction)."""
        if objectives != ("t2i",):
            return splits
        every = copy.copy(splits["t2i"])
        every.text_captions = np.arange(len(every))
        return {**splits, "t2i": every}

    def after_validation(self, run: Run, epoch: int, val: dict[str, float]) -> bool:
        """The ASR phase's stopping rule: keep the recognizer of its best epoch (as best.pt, on
        every rank: each has its own folder); with model.pipeline.asr_patience, end the phase once that
        many epochs have not improved on it."""
        cfg = run.cfg
        if self.objectives_at(cfg.model, cfg.train.epochs, epoch, run) != ("asr",):
            return False
        recognizer = cast(PipelineNet, run.model).recognizer
        key, score, sign = recognition_score(val)
        improved, kept = keep_better(run.out / ASR_BEST, "recognizer", recognizer, key, score, sign, epoch)
        if improved:
            return False
        patience = cfg.model.pipeline.asr_patience
        if patience and epoch - kept["epoch"] >= patience and epoch < self.asr_epochs(cfg.model, cfg.train.epochs):
            (run.out / ASR_ENDED).write_text(json.dumps({"ended_after": epoch, "best_epoch": kept["epoch"]}))
            log.info(
                f"pipe-seq: {key} has not improved for {patience} epoch(s) since epoch {kept['epoch']}: the "
                f"ASR phase ends after epoch {epoch}, the text-image part trains from epoch {epoch + 1}"
            )
            return True
        return False


def decoded_split(run: Run):
    """The training split with every utterance's text replaced by the recognizer's beam output
    (model.asr.beam), all training speech as in Higy et al. 2020 §3.2.2; cached in the run folder for
    resume."""
    split, cfg = run.splits["t2i"], run.cfg
    path = run.out / DECODED_TRAIN
    if path.exists():
        texts = json.loads(path.read_text())
    else:
        run.model.eval()
        t0 = time.time()
        with torch.no_grad():
            hyps = decode_captions(run.model, split, cfg, run.device, np.arange(len(split)), cfg.model.asr.beam)
        texts = [list(h) + [EOS] for h in hyps]
        path.write_text(json.dumps(texts))
        log.info(
            f"pipe-seq: decoded {len(texts)} training utterances (beam {cfg.model.asr.beam}) in "
            f"{time.time() - t0:.0f} s; the text-image part now trains on them"
        )
    decoded = copy.copy(split)  # the other objectives' split keeps the ground truth
    decoded.texts = texts
    decoded.text_captions = np.arange(len(split))
    decoded.decoded = True
    return decoded

"""Evaluation of any family: whatever its Task declares (vgs.tasks) — images ranked by its
queries, speech decoded, speech/text retrieval — on one split, as typed results.

With several workers each rank computes its shard of the captions/images and the results are
gathered back in order (vgs.distributed), so every rank scores the whole split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vgs import metric_names as names
from vgs.analysis import analyse, analyses_apply, phoneme_decoding
from vgs.checkpoint import load
from vgs.config import Config
from vgs.data.batching import PairSplit
from vgs.data.text import Vocabulary
from vgs.inference import decode_captions, embed_decoded, embed_images, embed_pairs, embed_queries
from vgs.metrics import bleu, cer, retrieval, wer
from vgs.tasks import task_of


@dataclass
class Evaluation:
    """One split's scores (metric_names' base names: s2i_r10, wer, ...) and, for decoding
    families, the first few (reference, hypothesis) pairs."""

    scores: dict[str, float]
    examples: list[dict[str, str]] = field(default_factory=list)

    def prefixed(self, prefix: str, leave_out: tuple[str, ...] = ()) -> dict[str, float]:
        return {prefix + k: v for k, v in self.scores.items() if k not in leave_out}


@torch.no_grad()
def evaluate(
    model, split: PairSplit, cfg: Config, device: torch.device, vocab: Vocabulary | None = None, beam: int = 1
) -> Evaluation:
    """Every metric the configuration's Task declares, on one split.  `beam`: decoding width
    for recognition and for pipelines' queries."""
    task = task_of(cfg.model)
    model.eval()
    scores: dict[str, float] = {}
    examples: list[dict[str, str]] = []
    direction = task.query_direction
    hyps: dict[int, list[int]] = {}  # caption -> decoded characters, decoded once for every use
    if task.decodes:
        decoded = np.arange(len(split)) if task.queries_decode else split.text_captions
        hyps = dict(zip(decoded.tolist(), decode_captions(model, split, cfg, device, decoded, beam)))
    if direction:
        text_query = task.image_queries == "text"
        captions = split.text_captions if text_query else np.arange(len(split))
        if task.queries_decode:
            queries = embed_decoded(model, split, cfg, device, captions, hyps)
        else:
            queries = embed_queries(model, split, cfg, device, captions, beam, text=text_query)
        # the images that have a caption among these, and each caption's index into them
        image_rows, own = np.unique(split.image_of_caption[captions], return_inverse=True)
        images = embed_images(model, split, cfg, device, image_rows)
        scores.update(retrieval(queries, images, own, direction, names.REVERSE[direction]))
        scores[names.OWN_QUERY_R10] = scores[f"{direction}_r10"]
        scores[names.CHANCE] = float(len(image_rows))
    if task.decodes:
        said = [vocab.decode(hyps[i]) for i in split.text_captions.tolist()]
        refs = [vocab.decode(split.texts[i]) for i in split.text_captions]
        scores["cer"] = cer(refs, said)
        if split.text_source == "transcript":
            scores["wer"] = wer(refs, said)
        else:
            scores["bleu"] = bleu(refs, said, tokenize="char")
        examples = [{"ref": r, "hyp": h} for r, h in zip(refs[:3], said[:3])]
    if task.selects_parts and len(split.text_captions):  # its text side alone, from ground-truth text
        scores.update(text_part_scores(model.text_image, split, cfg, device))
    if task.ranks_speech_text(cfg.model) and len(split.text_captions):
        speech, text = embed_pairs(model, split, cfg, device, split.text_captions)
        scores.update(retrieval(speech, text, np.arange(len(speech)), "s2t", None))
    return Evaluation(scores, examples)


def text_part_scores(part, split: PairSplit, cfg: Config, device: torch.device) -> dict[str, float]:
    """A pipeline's text side ranking images from the ground-truth text (t2i, i2t): what it
    is selected by, apart from the recognizer (Task.selects_parts)."""
    captions = split.text_captions
    queries = embed_queries(part, split, cfg, device, captions, text=True)
    rows, own = np.unique(split.image_of_caption[captions], return_inverse=True)
    return retrieval(queries, embed_images(part, split, cfg, device, rows), own, "t2i", "i2t")


def load_best(
    best_path: Path, cfg: Config, speech_dim: int, image_dim: int, device: torch.device, vocab: Vocabulary | None
):
    """The model of the best epoch (best.pt) in eval mode."""
    from vgs.tasks.factory import build_model

    state = load(best_path, device)
    model = build_model(
        cfg.model, speech_dim, image_dim, len(vocab) if vocab else 0, cfg.train.epochs, state.get("max_chars")
    ).to(device)
    model.load_state_dict(state["model"])
    return model.eval()


def test_scores(
    model, cfg: Config, data, device: torch.device, vocab: Vocabulary | None, every_epoch: bool = False
) -> dict[str, float]:
    """Test-split metrics of a model: test_* at the end, decoding with beam model.asr.beam; or,
    every_epoch, epoch_test_* decoding as the epoch's validation does (model.asr.val_beam)."""
    split = PairSplit(data, "test", task_of(cfg.model).text_source(cfg.model), vocab)
    beam = cfg.model.asr.val_beam if every_epoch else cfg.model.asr.beam
    return evaluate(model, split, cfg, device, vocab, beam=beam).prefixed(
        names.EPOCH_TEST if every_epoch else names.TEST
    )


def beam_val_scores(
    model, split: PairSplit, cfg: Config, device: torch.device, vocab: Vocabulary | None
) -> dict[str, float]:
    """beam_val_*: the selected epoch's model on the validation split, decoding with beam
    model.asr.beam, as the papers' tables decode (beam 10).  The per-epoch val_wer / val_bleu
    decode with model.asr.val_beam (1: greedy, cheap); the two are never mixed under one name.
    Empty for families that decode nothing, or when both beams are the same."""
    if not task_of(cfg.model).decodes or cfg.model.asr.beam == cfg.model.asr.val_beam:
        return {}
    return evaluate(model, split, cfg, device, vocab, beam=cfg.model.asr.beam).prefixed(
        names.BEAM_VAL, leave_out=(names.CHANCE,)
    )


def final_scores(cfg: Config, best_path: Path, d, device: torch.device, task, new_model) -> dict[str, float]:
    """The end of a run: test_* and beam_val_* of the best epoch (train.test_at_end), and analysis_*
    (train.analysis).  d: the run's TrainingData; new_model: builds the run's network afresh."""
    analysis = cfg.train.analysis and analyses_apply(task)
    if not (cfg.train.test_at_end or analysis):
        return {}
    best = load_best(best_path, cfg, d.data.speech.dim, d.data.images.feature_dim, device, d.vocab)
    out: dict[str, float] = {}
    if cfg.train.test_at_end:
        out.update(test_scores(best, cfg, d.data, device, d.vocab))
        out.update(beam_val_scores(best, d.val, cfg, device, d.vocab))
    if analysis:
        out.update(analyse(best, d.val, cfg, device))
        torch.manual_seed(cfg.train.seed)  # the run's own initial weights: Chrupała 2019's "random init"
        out.update(phoneme_decoding(best, new_model(), d.val, cfg, device, d.data.corpus.root))
    return out


def logged_scores(model, cfg: Config, d, device: torch.device) -> dict[str, float]:
    """The scores of an epoch that are logged and never select it: the test split's (epoch_test_*,
    train.test_every_epoch; Mortazavi 2020 Fig. 2) and a fixed sample of the training images'
    (trainset_*, train.eval_train_images; Mortazavi 2020 §5.2 judges schedulers by them).
    d: the run's TrainingData."""
    out = test_scores(model, cfg, d.data, device, d.vocab, True) if cfg.train.test_every_epoch else {}
    if d.train_sample is not None:
        sample = evaluate(model, d.train_sample, cfg, device, d.vocab, beam=cfg.model.asr.val_beam)
        out |= sample.prefixed(names.TRAIN_SAMPLE)
    return out

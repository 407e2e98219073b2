"""What a configuration trains on: its corpus, text, vocabulary, each objective's training split,
and the order of an epoch's batches (from the Task: vgs.tasks)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgs.config import Config, ConfigError
from vgs.data.batching import PairSplit, SpeechTextSplit, image_sample
from vgs.data.prepare import Prepared, check_speech_text_source, prepare, prepare_speech_text
from vgs.data.text import Vocabulary, text_of
from vgs.models.ssl import featuriser_for
from vgs.tasks import OBJECTIVES, task_of


@dataclass
class TrainingData:
    """What a configuration trains and validates on."""

    data: Prepared
    source: str | None  # the text it trains on (None: no text)
    vocab: Vocabulary | None
    splits: dict  # objective -> its training split
    val: PairSplit
    max_chars: int | None  # decoding limit from the training text (decoding_limit)
    train_sample: PairSplit | None = None  # train.eval_train_images of the training images, scored every epoch


def training_vocabulary(data: Prepared, source: str | None, extra=None) -> Vocabulary | None:
    """Characters of the training text (and of the non-aligned speech/text corpus, if any)."""
    if source is None:
        return None
    utts = data.corpus.split("train") + (extra.split("train") if extra is not None else [])
    return Vocabulary.from_texts(text_of(u, source) for u in utts)


def decoding_limit(cfg: Config, train_split: PairSplit) -> int | None:
    """Decoding stops at model.asr.max_chars or at twice the longest training text, whichever is
    shorter: an undertrained decoder that never emits </s> then costs little."""
    lengths = [len(t) for t in train_split.texts if t is not None]
    return min(cfg.model.asr.max_chars, 2 * max(lengths)) if lengths else None


def training_data(cfg: Config, data: Prepared | None = None) -> TrainingData:
    """The data of `cfg`; prepares the corpus and its stores where `data` is not given."""
    try:
        task = task_of(cfg.model)
        source = task.text_source(cfg.model)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if task.uses_speech_text_corpus(cfg):
        check_speech_text_source(cfg.data)  # before any corpus work
    if cfg.train.analysis and cfg.data.alignments and not Path(cfg.data.alignments).expanduser().exists():
        raise ConfigError(f"data.alignments: {cfg.data.alignments} does not exist (a forced aligner's output)")
    speech = featuriser_for(cfg)  # MFCCs, or a front-end's cached states or waveforms
    data = dataclasses.replace(data or prepare(cfg.data, speech=speech), speech_norm=cfg.data.speech_norm)
    speech_text = prepare_speech_text(cfg.data, speech) if task.uses_speech_text_corpus(cfg) else None
    vocab = training_vocabulary(data, source, speech_text[0] if speech_text else None)
    train_split = PairSplit(data, "train", source, vocab)
    splits = {objective: train_split for objective in task.objectives(cfg.model)}
    if speech_text:
        splits["s2t"] = SpeechTextSplit(*speech_text, "train", source, vocab, cfg.data.speech_norm)
    sample = None
    if cfg.train.eval_train_images > 0:  # the same images every epoch and every seed
        chosen = image_sample(train_split, cfg.train.eval_train_images, seed=0)
        sample = PairSplit(data, "train", source, vocab, images=chosen)
    return TrainingData(
        data, source, vocab, splits, PairSplit(data, "val", source, vocab), decoding_limit(cfg, train_split), sample
    )


def epoch_plan(
    objectives: tuple[str, ...], rule: str, splits: dict, cfg: Config, epoch: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """(objective, caption batch) in training order: one batch per objective in turn, each one's
    data shuffled independently.  How long the epoch is follows the Task's epoch_rule: the first
    objective's batches ("first": a shorter one starts over, reshuffled, so the main objective sees
    all its data whatever the amount of text) or the fewest of any ("shortest")."""

    def batches(k: int, objective: str, objective_rng: np.random.Generator) -> list[np.ndarray]:
        split = splits[objective]
        return split.epoch_batches(
            objective_rng,
            cfg.train.batch_size,
            cfg.train.captions_per_image,
            allowed=None if OBJECTIVES[objective].captions == "all" else split.text_captions,
            any_images=cfg.train.negatives == "batch",
        )

    per_objective = [
        batches(k, o, rng if k == 0 else np.random.default_rng([cfg.train.seed, epoch, k]))
        for k, o in enumerate(objectives)
    ]
    if not all(per_objective):
        raise ConfigError(
            f"epoch {epoch}: task(s) {', '.join(t for t, b in zip(objectives, per_objective) if not b)} have "
            f"no training batches (no text for data.text_*/model.text.source, or too few captions)"
        )
    n = len(per_objective[0]) if rule == "first" else min(map(len, per_objective))
    for k, objective in enumerate(objectives):
        cycle = 1
        while len(per_objective[k]) < n:  # its data again, in a new order
            per_objective[k] = per_objective[k] + batches(
                k, objective, np.random.default_rng([cfg.train.seed, epoch, k, cycle])
            )
            cycle += 1
    return [(o, per_objective[k][i]) for i in range(n) for k, o in enumerate(objectives)]

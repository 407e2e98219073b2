"""What a model family is to the rest of vgs: one Task.

A Task declares everything family-specific that training, evaluation and the sweep layer need,
so that `train.py` and `evaluate.py` never name a family:
  - the configuration it reads (`sections` of model.*; a key set outside them is an error),
  - its text (none, a fixed source, or model.text.source) and its data: which objectives it
    trains each epoch (`objectives_at`), what each objective's batches hold (OBJECTIVES), whether
    its speech/text objective may take a second, non-aligned corpus, how long an epoch is,
  - the network (`build`), its short name (`model_name`),
  - what evaluation ranks or decodes (`image_queries`, `decodes`, speech->text retrieval) and so
    the names of its metrics (`metric_names`) and the one that selects the best epoch,
  - hooks around an epoch for families whose training has phases (pipe-seq).
The networks themselves live in vgs/models/.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from vgs import metric_names as names
from vgs.config import Config, ConfigError, ModelConfig, current_key
from vgs.data.batching import PairSplit
from vgs.data.text import Vocabulary

TEXT_SOURCES = ("transcript", "translation")


@dataclass(frozen=True)
class Needs:
    """What one objective's training batches hold."""

    captions: str  # "all": every caption; "text": only captions with text (textual downsampling)
    text: bool  # character tensors of the caption's text
    images: bool  # image pixels (or features)


# Objective -> its batches.  s2i: speech/image hinge; t2i: text/image hinge; s2t: speech/text
# hinge; asr: ASR/SLT cross-entropy.
OBJECTIVES = {
    "s2i": Needs("all", text=False, images=True),
    "t2i": Needs("text", text=True, images=True),
    "asr": Needs("text", text=True, images=False),
    "s2t": Needs("text", text=True, images=False),
}


@dataclass(frozen=True)
class Sizes:
    """What building a network needs besides its configuration."""

    speech_dim: int  # speech feature size
    image_dim: int = 0  # precomputed image feature size (0: pixels)
    vocab: int = 0  # characters of the training text
    epochs: int = 1  # the training budget (pipe-seq's default ASR phase is half of it)
    max_chars: int | None = None  # decoding limit (None: model.asr.max_chars)


@dataclass
class Run:
    """A training run as the hooks see it: they may replace an objective's training split."""

    model: nn.Module  # the family's network (vgs.models.contract says what it provides)
    cfg: Config
    device: torch.device
    vocab: Vocabulary | None
    splits: dict[str, PairSplit]  # objective -> training split
    out: Path  # the run's checkpoint folder


class Task:
    family: str = ""  # the registry name (model.family)
    sections: tuple[str, ...] = ()  # model.<section> (or model.<section>.<key>) it reads
    text: str | None = None  # None: no text; "config": model.text.source; else the fixed source
    image_queries: str | None = "speech"  # what ranks images at evaluation: speech | text | None
    decodes = False  # speech -> characters (WER/CER or BLEU/CER)
    # its speech queries are the recognizer's text (network.query_decoded): one decoding serves both
    queries_decode = False
    # What one epoch is when objectives alternate: "first" — the first objective's data (a
    # shorter one cycles, reshuffled); "shortest" — until the objective with fewest batches runs out.
    epoch_rule = "first"
    nonaligned_speech_text = False  # data.speech_text=nonaligned gives its s2t objective a second corpus
    transformer_head = False  # model.speech.head=transformer: its speech encoder may be the light transformer
    run_files: tuple[str, ...] = ()  # files of the run folder a resume elsewhere copies (besides best.pt)
    # its parts each keep their own best epoch (compose_best); evaluation also scores its text-image
    # part from ground-truth text (t2i), which that part is selected by
    selects_parts = False
    network: type | None = None  # vgs.models class, built as network(cfg, speech_dim, image_dim, vocab)

    def __init__(self, family: str | None = None):
        if family:  # one class may serve several registry names (asr and slt, coembed and speech-image)
            self.family = family

    # ------------------------------------------------------------ configuration

    def text_source(self, cfg: ModelConfig) -> str | None:
        if self.text is None:
            return None
        source = cfg.text.source if self.text == "config" else self.text
        if source not in TEXT_SOURCES:
            raise ValueError(f"model.text.source must be transcript or translation, got '{source}'")
        return source

    def reads(self, key: str) -> bool:
        """Whether a model.* key applies to this family ('model.asr.hidden')."""
        rest = key[len("model.") :]
        return rest in ("family", "latent") or any(rest == s or rest.startswith(s + ".") for s in self.sections)

    # ------------------------------------------------------------ training

    def objectives(self, cfg: ModelConfig) -> tuple[str, ...]:
        """Every objective it trains (in the order one epoch alternates them)."""
        raise NotImplementedError

    def objectives_at(self, cfg: ModelConfig, epochs: int, epoch: int, run: Run | None = None) -> tuple[str, ...]:
        """The objectives trained at `epoch` of `epochs` (a run of epochs with the same ones is a
        phase, with its own learning-rate schedule); `run`: the training so far, for a family whose
        phases end on what it measured (None: as planned)."""
        return self.objectives(cfg)

    def uses_speech_text_corpus(self, cfg) -> bool:
        """Whether a configuration (vgs.config.Config) trains on a NON-ALIGNED speech/text corpus."""
        return self.nonaligned_speech_text and cfg.data.speech_text == "nonaligned"

    def build(self, cfg: ModelConfig, sizes: Sizes) -> nn.Module:
        """The family's network: a text family needs an even latent size (N/2 GRU units per
        direction) and training text; a decoding one stops at the run's decoding limit."""
        if self.text is not None:
            if cfg.latent % 2:
                raise ValueError(f"model.latent must be even (N/2 GRU units per direction), got {cfg.latent}")
            if sizes.vocab < 5:
                raise ValueError(
                    f"family '{cfg.family}' needs text, but the training split has none for '{self.text_source(cfg)}'"
                )
        if self.decodes and sizes.max_chars is not None:
            cfg = dataclasses.replace(cfg, asr=dataclasses.replace(cfg.asr, max_chars=sizes.max_chars))
        if self.network is None:
            raise NotImplementedError(f"family '{self.family}' names no network class (Task.network)")
        return self.network(cfg, sizes.speech_dim, sizes.image_dim, sizes.vocab)

    def before_epoch(self, run: Run, epoch: int) -> None:
        """Called before each training epoch (and before a new phase's schedule is made)."""

    def compose_best(self, run: Run, epoch: int) -> dict[str, float]:
        """Called after each epoch's validation: a family whose parts each keep their own best epoch
        (pipe-ind) loads them into run.model at the last epoch and returns what it chose (the loop
        then validates and keeps that composition as the best); {} otherwise."""
        return {}

    def planned_splits(self, cfg: ModelConfig, splits: dict, objectives: tuple[str, ...]) -> dict:
        """The training splits a plan (the dry run) counts the batches of a phase training
        `objectives` on: a family that replaces a split in before_epoch says so here."""
        return splits

    def after_validation(self, run: Run, epoch: int, val: dict[str, float]) -> bool:
        """Called with each epoch's validation scores (val_*); True: the phases changed (a phase
        ended early), and the loop plans them again with objectives_at."""
        return False

    # ------------------------------------------------------------ evaluation

    @property
    def query_direction(self) -> str | None:
        """The retrieval direction of its image queries: s2i (speech, decoded or not), t2i, or None."""
        return {"speech": "s2i", "text": "t2i"}.get(self.image_queries or "")

    def uses_images(self, cfg: ModelConfig) -> bool:
        """Whether it trains or evaluates on images (ASR and SLT do not: they need no image features)."""
        return self.query_direction is not None or any(OBJECTIVES[o].images for o in self.objectives(cfg))

    def ranks_speech_text(self, cfg: ModelConfig) -> bool:
        return "s2t" in self.objectives(cfg)

    def metric_names(self, cfg: ModelConfig) -> tuple[str, ...]:
        """The validation scores (without the val_ prefix) an epoch of this configuration reports."""
        out: tuple[str, ...] = ()
        if self.query_direction:
            out += names.retrieval_names(self.query_direction) + (names.OWN_QUERY_R10, names.CHANCE)
        if self.decodes:
            out += ("cer", "wer" if self.text_source(cfg) == "transcript" else "bleu")
        if self.ranks_speech_text(cfg):
            out += names.retrieval_names("s2t", reverse=False)
        return out

    def selection(self, cfg: ModelConfig) -> tuple[str, str]:
        """(validation metric, mode) that picks the best epoch."""
        return names.VAL + names.OWN_QUERY_R10, "max"

    # ------------------------------------------------------------ naming

    def model_name(self, cfg: ModelConfig) -> str:
        return self.family


def refuse_foreign_keys(task: Task, keys) -> None:
    """A model.* key the family does not read is an error that says which family reads it."""
    foreign = sorted(k for k in keys if k.startswith("model.") and not task.reads(current_key(k)))
    if foreign:
        reads = ", ".join(f"model.{s}" for s in ("family", "latent") + task.sections)
        raise ConfigError(f"{', '.join(foreign)}: not a setting of model.family={task.family} (it reads {reads})")

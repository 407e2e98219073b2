"""What a family's network provides, as typed Protocols (the training loop, evaluation and the
analyses call only these).  Every network trains its objectives; the rest depends on what its Task
declares: image queries need `query` and `image`, decoding needs `transcribe`, speech/text
retrieval needs `match`, the analyses need `speech_states`.  tests/test_tasks.py checks every
family's network against its Task's declaration."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from vgs.losses import Loss

Batch = dict[str, torch.Tensor]


@runtime_checkable
class Trains(Protocol):
    """Every family's network: the objectives it can train (s2i, t2i, s2t, asr) and their loss terms."""

    objectives: tuple[str, ...]

    def objective(self, batch: Batch, objective: str, loss: Loss) -> dict[str, torch.Tensor]:
        """Named loss terms of one objective for one batch (the training loop sums them)."""
        ...


@runtime_checkable
class RanksImages(Protocol):
    """A network whose captions (speech, text or decoded speech) retrieve images."""

    def query(self, batch: Batch, beam: int = 1) -> torch.Tensor:
        """Caption -> joint-space embeddings."""
        ...

    def image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image (pixels or fixed features) -> joint-space embeddings."""
        ...


@runtime_checkable
class Transcribes(Protocol):
    """A network with an ASR or SLT decoder."""

    def transcribe(self, batch: Batch, beam: int = 1) -> list[list[int]]:
        """Speech -> character ids (greedy at beam 1)."""
        ...


@runtime_checkable
class MatchesText(Protocol):
    """A network that embeds speech and text in one space (speech/text retrieval)."""

    def match(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(speech, text) embeddings of the batch's captions."""
        ...


@runtime_checkable
class EncodesSpeech(Protocol):
    """A network whose (shared) speech encoder the analyses probe."""

    def speech_states(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame-level states and their lengths."""
        ...

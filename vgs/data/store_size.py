"""The disk a feature store will take, known before it is built, and a refusal that names the figure
when its folder has less free space (a store at Places size is tens of GB: finding out when the disk
fills, hours in, loses the hours)."""

from __future__ import annotations

import shutil
from pathlib import Path

from vgs.data.records import CorpusError, Utterance

SAMPLE = 200  # recordings whose duration is read to estimate the corpus's (header reads only)
NPY_HEADER = 128


def mean_seconds(utterances: list[Utterance], sample: int = SAMPLE) -> float:
    """Mean duration of evenly spaced recordings of `utterances` (from their headers)."""
    import soundfile as sf

    step = max(1, len(utterances) // sample)
    seconds = []
    for u in utterances[::step][:sample]:
        try:
            seconds.append(sf.info(u.audio).duration)
        except Exception:  # noqa: BLE001 - an unreadable file is the builder's to report, with its name
            continue
    return sum(seconds) / len(seconds) if seconds else 0.0


def speech_store_bytes(utterances: list[Utterance], dim: int, hop: int, sample_rate: int, itemsize: int = 4) -> int:
    """The frames of every utterance (`itemsize` bytes a value: 4 float32, 2 fp16), plus its id and offset."""
    frames_per_utterance = mean_seconds(utterances) * sample_rate / hop + 1
    per_utterance = frames_per_utterance * dim * itemsize + 8 + max((len(u.id) for u in utterances[:SAMPLE]), default=0)
    return int(len(utterances) * per_utterance)


def image_store_bytes(images: int, size: int) -> int:
    """uint8 size x size x 3 pixels per image."""
    return images * size * size * 3 + NPY_HEADER


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def require_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start a build that the disk under `folder` cannot hold."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise CorpusError(
            f"{what} needs about {gib(needed)} in {folder}, which has {gib(free)} free; free space or put the "
            f"stores on a larger disk (data.store=DIR)"
        )

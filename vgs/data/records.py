"""What every corpus importer produces: utterance records."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


class CorpusError(ValueError):
    """A corpus that cannot be read; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class Utterance:
    id: str  # unique, e.g. the wav file's stem
    audio: str  # absolute path of the audio file
    image: str | None  # image file name, the key of the image store; None for speech/text corpora
    speaker: str
    transcript: str
    translation: str | None
    split: str  # train | val | test


@dataclass
class Corpus:
    name: str
    root: Path
    image_dir: Path | None
    utterances: list[Utterance]
    skipped: list[dict] = field(default_factory=list)  # items left out at import (skip_bad), with reasons

    def split(self, name: str) -> list[Utterance]:
        return [u for u in self.utterances if u.split == name]

    def images(self, split: str | None = None) -> list[str]:
        """Distinct image names, in first-mention order."""
        seen: dict[str, None] = {}
        for u in self.utterances:
            if u.image is not None and (split is None or u.split == split):
                seen.setdefault(u.image, None)
        return list(seen)


def require_splits(root, utterances: list[Utterance]) -> None:
    """Every corpus needs train, val and test utterances, and an image belongs to one split only
    (otherwise test images leak into training); name what is wrong."""
    present = {u.split for u in utterances}
    missing = [s for s in SPLITS if s not in present]
    if missing:
        raise CorpusError(f"corpus {root} has no {', '.join(missing)} utterances")
    split_of: dict[str, str] = {}
    for u in utterances:
        if u.image is None:
            continue
        first = split_of.setdefault(u.image, u.split)
        if first != u.split:
            raise CorpusError(
                f"corpus {root}: image '{u.image}' is in both the {first} and the {u.split} split "
                f"(e.g. utterance '{u.id}'); each image must belong to one split"
            )


class Problems:
    """Import problems (missing files): raised at once, or with skip_bad recorded with their reason
    so that the importer can leave the item out and the feature store can report it."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.skipped: list[dict] = []

    def __call__(self, item: str, message: str) -> None:
        if not self.skip_bad:
            raise CorpusError(f"{message} (data.skip_bad=true / --skip-bad leaves such items out, with a report)")
        self.skipped.append({"id": item, "reason": message})


def inside(name: str, where: str) -> str:
    """A file name that a corpus's metadata lists, refused when it leaves the folder it is listed
    under ('../../x.wav', '/etc/passwd'): metadata names files inside the corpus.  Lexical, so a
    corpus whose folders are symlinks elsewhere still reads."""
    normal = os.path.normpath(name)
    if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
        raise CorpusError(f"{where}: '{name}' points outside the corpus folder; list files inside it")
    return name

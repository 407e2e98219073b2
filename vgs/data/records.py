"""What every corpus importer produces: utterance records."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


class CorpusError(ValueError):
    """A corpus that cannot be read; the message names the file (and line) at fault."""


@dataclass(frozen=True)
class Utterance:
    id: str  # unique, e.g. the wav file's stem
    audio: str  # absolute path of the audio file
    image: str  # image file name, the key of the image store
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

    def split(self, name: str) -> list[Utterance]:
        return [u for u in self.utterances if u.split == name]

    def images(self, split: str | None = None) -> list[str]:
        """Distinct image names, in first-mention order."""
        seen: dict[str, None] = {}
        for u in self.utterances:
            if split is None or u.split == split:
                seen.setdefault(u.image, None)
        return list(seen)


def require_splits(root, utterances: list[Utterance]) -> None:
    """Every corpus needs train, val and test utterances; name the ones missing."""
    present = {u.split for u in utterances}
    missing = [s for s in SPLITS if s not in present]
    if missing:
        raise CorpusError(f"corpus {root} has no {', '.join(missing)} utterances")

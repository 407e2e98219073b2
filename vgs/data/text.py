"""Character vocabulary and the text a model sees (Higy et al. 2020's models are character-based).

English transcripts are lower-cased and stripped (case is not in the speech); Japanese
translations are kept as written.  The vocabulary is built from the training split's text of
the chosen source, sorted, so it is the same on every run; characters that only occur in
val/test map to <unk>.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgs.data.records import Utterance

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
SOURCES = ("transcript", "translation")


def text_of(u: Utterance, source: str) -> str | None:
    """The caption's text for `source`, normalised; None where the caption has none."""
    if source == "transcript":
        return " ".join(u.transcript.lower().split()) or None
    if source == "translation":
        return u.translation.strip() if u.translation and u.translation.strip() else None
    raise ValueError(f"unknown text source '{source}'; known: {', '.join(SOURCES)}")


@dataclass
class Vocabulary:
    chars: list[str]

    def __post_init__(self):
        self.index = {c: i + len(SPECIALS) for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.chars)

    @classmethod
    def from_texts(cls, texts) -> Vocabulary:
        return cls(sorted({c for t in texts if t for c in t}))

    def encode(self, text: str) -> list[int]:
        """Character ids followed by </s>."""
        return [self.index.get(c, UNK) for c in text] + [EOS]

    def decode(self, ids) -> str:
        """Characters up to the first </s>; special symbols dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.chars[i - len(SPECIALS)])
        return "".join(out)

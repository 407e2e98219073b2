"""Japanese translations from F30kEnt-JP, matched to Flickr8K captions (Higy et al. 2020 §4.1).

F30kEnt-JP gives, per Flickr30k image, a text file of Japanese sentences whose line i translates
line i of the English Flickr30k Entities file of that image (only some lines are translated).
Both carry phrase markup, `[/EN#12/people A young man]`, which is stripped.  Flickr30k's caption
order differs from Flickr8K's, so captions are matched by text within an image: exactly, after
lower-casing, removing the markup, collapsing spaces and treating hyphens as spaces
("red-haired" = "red haired", footnote 1 of Higy et al. 2020).  Captions without a match keep their
position and get no translation.

    JP_DIR/<image id>.txt    F30kEnt-JP (e.g. Sentences_jp_v2/)
    EN_DIR/<image id>.txt    Flickr30k Entities English (Sentences/); default: a folder named
                             Sentences beside or inside JP_DIR
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from vgs.data.records import Corpus, CorpusError

_PHRASE = re.compile(r"\[/EN#\d+(?:/[^\s\]]+)*\s+([^\]]*)\]")


def strip_markup(text: str) -> str:
    """`[/EN#1/people A man] sits .` -> `A man sits .`"""
    return _PHRASE.sub(r"\1", text).strip()


def match_key(text: str) -> str:
    """The form two English captions are compared in."""
    text = strip_markup(text).lower().replace("-", " ")
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(" .")


def find_english_dir(jp_dir: Path) -> Path:
    for candidate in (jp_dir.parent / "Sentences", jp_dir / "Sentences"):
        if candidate.is_dir():
            return candidate
    raise CorpusError(
        f"no English Flickr30k Entities sentences found for {jp_dir}: put its Sentences/ folder "
        f"beside it or pass data.translations_en"
    )


def read_f30kent_jp(jp_dir: str | Path, en_dir: str | Path | None = None) -> dict[str, dict[str, str]]:
    """{image id: {match_key(English caption): Japanese sentence}} for every translated line."""
    jp_dir = Path(jp_dir).expanduser().resolve()
    if not jp_dir.is_dir():
        raise CorpusError(f"translation folder not found: {jp_dir}")
    en_dir = Path(en_dir).expanduser().resolve() if en_dir else find_english_dir(jp_dir)
    if not en_dir.is_dir():
        raise CorpusError(f"English sentence folder not found: {en_dir}")
    out: dict[str, dict[str, str]] = {}
    files = sorted(jp_dir.glob("*.txt"))
    if not files:
        raise CorpusError(f"no per-image .txt files in {jp_dir} (F30kEnt-JP layout: <image id>.txt)")
    for jp_file in files:
        en_file = en_dir / jp_file.name
        if not en_file.is_file():
            raise CorpusError(f"{jp_file} has no English counterpart {en_file}")
        jp_lines = jp_file.read_text(encoding="utf-8").splitlines()
        en_lines = en_file.read_text(encoding="utf-8").splitlines()
        pairs = {}
        for en, jp in zip(en_lines, jp_lines):
            jp = strip_markup(jp)
            if jp and en.strip():
                pairs[match_key(en)] = jp
        if pairs:
            out[jp_file.stem] = pairs
    return out


def attach_translations(corpus: Corpus, table: dict[str, dict[str, str]]) -> tuple[Corpus, int]:
    """The corpus with `translation` set where its caption matches; returns (corpus, matched)."""
    utterances, matched = [], 0
    for u in corpus.utterances:
        jp = table.get(Path(u.image).stem, {}).get(match_key(u.transcript)) if u.image else None
        matched += jp is not None
        utterances.append(dataclasses.replace(u, translation=jp))
    return dataclasses.replace(corpus, utterances=utterances), matched

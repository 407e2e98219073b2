"""Phoneme timings a user brings for a real corpus (data.alignments), for Chrupała 2019's
phoneme-decoding probe (Table 5): the output of a forced aligner, per utterance.

data.alignments is one of
  - a folder of Montreal Forced Aligner TextGrids (`<utterance id>.TextGrid`, its "phones" tier;
    MFA writes them per speaker folder: any depth is searched),
  - a folder of Gentle JSON files (`<utterance id>.json`: words with their phones' durations),
  - one JSON file {utterance id: [[phoneme, start s, end s], ...]} (vgs's own phonemes.json).

Times are seconds from the start of the recording vgs reads.  Silence and noise labels (sil, sp,
spn, empty) are left out, and position or stress marks are stripped ("ah_B" -> "ah", "AH1" -> "AH"),
so that a phoneme is one class whatever its place in the word or its stress.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vgs.data.records import CorpusError

Segment = tuple[str, float, float]  # (phoneme, start s, end s)
SILENCE = {"", "sil", "sp", "spn", "<eps>", "oov"}


ARPABET_VOWELS = set("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())


def phoneme_class(label: str) -> str | None:
    """The phoneme a label names, without Gentle's position suffix (dh_B) or an ARPAbet vowel's
    stress digit (AH0; other labels keep their digits: eSpeak's @2 is its own phoneme); None for
    silence and noise."""
    name = re.sub(r"_[BIES]$", "", label.strip())
    stressed = re.fullmatch(r"([A-Za-z]{2})[012]", name)
    if stressed and stressed.group(1).upper() in ARPABET_VOWELS:
        name = stressed.group(1)
    return None if name.lower() in SILENCE else name


def read_textgrid(path: Path) -> list[Segment]:
    """The "phones" tier of a Praat TextGrid (MFA's long text format)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    tiers = re.split(r"\n\s*item \[\d+\]:", text)
    phones = next((t for t in tiers if re.search(r'name = "(phones|phone)"', t)), None)
    if phones is None:
        raise CorpusError(f"{path}: no tier named phones (a Montreal Forced Aligner TextGrid has words and phones)")
    out = []
    for xmin, xmax, label in re.findall(r'xmin = ([\d.eE+-]+)\s*xmax = ([\d.eE+-]+)\s*text = "((?:[^"]|"")*)"', phones):
        name = phoneme_class(label.replace('""', '"'))
        if name is not None and float(xmax) > float(xmin):
            out.append((name, float(xmin), float(xmax)))
    return out


def read_gentle(path: Path) -> list[Segment]:
    """Gentle's JSON: each aligned word's phones, laid end to end from the word's start."""
    try:
        words = json.loads(path.read_text())["words"]
    except (ValueError, KeyError, TypeError) as e:
        raise CorpusError(f"{path}: not a Gentle alignment (a JSON object with 'words'): {e}") from None
    out = []
    for word in words:
        if word.get("case") != "success" or "start" not in word:
            continue  # words Gentle could not align have no times
        t = float(word["start"])
        for phone in word.get("phones", []):
            end = t + float(phone["duration"])
            name = phoneme_class(str(phone["phone"]))
            if name is not None:
                out.append((name, t, end))
            t = end
    return out


def read_table(path: Path) -> dict[str, list[Segment]]:
    """{utterance id: [[phoneme, start, end], ...]} from one JSON file."""
    try:
        raw = json.loads(path.read_text())
        return {u: [(str(p), float(s), float(e)) for p, s, e in segs] for u, segs in raw.items()}
    except (ValueError, AttributeError, TypeError) as e:
        raise CorpusError(f"{path}: not {{utterance id: [[phoneme, start, end], ...]}}: {e}") from None


def user_alignments(source: str | Path, utt_ids: list[str]) -> dict[str, list[Segment]]:
    """The segments of `utt_ids` from data.alignments; an utterance without one is named (with how
    many others lack one) rather than probed on an empty timeline."""
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(f"data.alignments: {path} does not exist")
    if path.is_file():
        table = read_table(path)
        found = {u: table[u] for u in utt_ids if u in table}
    else:
        files = {p.stem: p for p in path.rglob("*") if p.suffix.lower() in (".textgrid", ".json")}
        found = {}
        for u in utt_ids:
            if u in files:
                reader = read_textgrid if files[u].suffix.lower() == ".textgrid" else read_gentle
                found[u] = reader(files[u])
    missing = [u for u in utt_ids if u not in found]
    if missing:
        raise CorpusError(
            f"data.alignments: {path} has no alignment for {len(missing)} of the {len(utt_ids)} utterances "
            f"probed (e.g. {', '.join(missing[:3])}); name the files <utterance id>.TextGrid or .json"
        )
    return found

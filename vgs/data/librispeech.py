"""Importer for LibriSpeech: speech with transcriptions and no images, the NON-ALIGNED
speech/text data of Chrupała 2019.

    ROOT/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   lines "ID WORDS ..."
    ROOT/<subset>/<speaker>/<chapter>/<ID>.flac

ROOT is the LibriSpeech folder holding subsets (train-clean-100, dev-clean, test-clean, ...) or
one subset folder.  The split comes from the subset name: train* -> train, dev* -> val,
test* -> test.  Transcripts are kept as written (upper case, no punctuation).
"""

from __future__ import annotations

from pathlib import Path

from vgs.data.places import split_of
from vgs.data.records import Corpus, CorpusError, Problems, Utterance

AUDIO_SUFFIXES = (".flac", ".wav")


def transcript_files(root: Path) -> list[Path]:
    """trans.txt files of ROOT as a LibriSpeech folder (subsets inside) or as one subset."""
    return sorted(root.glob("*/*/*/*.trans.txt")) or sorted(root.glob("*/*/*.trans.txt"))


def is_librispeech(root: Path) -> bool:
    return bool(transcript_files(root))


def read_librispeech(root: str | Path, image_dir: str | Path | None = None, skip_bad: bool = False) -> Corpus:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"corpus folder not found: {root}")
    if image_dir:
        raise CorpusError(f"{root} is LibriSpeech (speech and text, no images); data.image_dir does not apply")
    files = transcript_files(root)
    if not files:
        raise CorpusError(
            f"no LibriSpeech transcripts in {root}: expected <subset>/<speaker>/<chapter>/"
            f"<speaker>-<chapter>.trans.txt beside the .flac files"
        )
    problems = Problems(skip_bad)
    utterances: list[Utterance] = []
    seen: dict[str, Path] = {}
    for path in files:
        subset = path.parent.parent.parent.name  # ROOT/<subset>/spk/chap, or ROOT itself when it is a subset
        split = split_of(subset)
        if split is None:
            raise CorpusError(
                f"{path}: cannot tell the split of subset '{subset}' (expected a name starting with train, dev or test)"
            )
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, words = line.strip().partition(" ")
            if not words:
                raise CorpusError(f"{path}:{lineno}: expected 'ID WORDS ...', got {line!r}")
            if uid in seen:
                raise CorpusError(f"{path}:{lineno}: duplicate utterance id '{uid}' (also in {seen[uid]})")
            seen[uid] = path
            audio = next(
                (path.parent / f"{uid}{s}" for s in AUDIO_SUFFIXES if (path.parent / f"{uid}{s}").is_file()), None
            )
            if audio is None:
                problems(uid, f"{path}:{lineno}: audio file not found: {path.parent / uid}.flac")
                continue
            utterances.append(
                Utterance(
                    id=uid,
                    audio=str(audio),
                    image=None,
                    speaker=uid.split("-")[0],
                    transcript=words.strip(),
                    translation=None,
                    split=split,
                )
            )
    if not utterances:
        raise CorpusError(f"{root}: no LibriSpeech utterance has its audio file")
    return Corpus(
        name=f"librispeech:{root.name}", root=root, image_dir=None, utterances=utterances, skipped=problems.skipped
    )

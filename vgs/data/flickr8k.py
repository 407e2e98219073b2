"""Importer for the Flickr8K Audio Caption Corpus layout (also written by the built-in corpus).

ROOT/dataset.json or ROOT/dataset_flickr8k.json   Karpathy split: images[] with filename,
                                                   split, sentences[] (raw, optional raw_jp)
ROOT/flickr_audio/wav2capt.txt                    lines "X_3.wav X.jpg #3"
ROOT/flickr_audio/wav2spk.txt                     lines "X_3.wav 17" (optional)
ROOT/flickr_audio/wavs/*.wav
images: --image-dir, or ROOT/Flicker8k_Dataset, ROOT/Flickr8k_Dataset, ROOT/images
"""

from __future__ import annotations

import json
from pathlib import Path

from vgs.data.records import Corpus, CorpusError, Problems, Utterance, inside, require_splits

KARPATHY_NAMES = ("dataset.json", "dataset_flickr8k.json")
IMAGE_DIR_NAMES = ("Flicker8k_Dataset", "Flickr8k_Dataset", "images")
_SPLIT_ALIASES = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def _caption_of(line: str, where: str, images: dict, split_file: str) -> tuple[str, str, str, dict]:
    """(wav, image, split, Karpathy sentence) of one wav2capt.txt line ('X_3.wav X.jpg #3')."""
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("#") or not parts[2][1:].isdigit():
        raise CorpusError(f"{where}: expected 'X_3.wav X.jpg #3', got {line!r}")
    wav, image, k = inside(parts[0], where), inside(parts[1], where), int(parts[2][1:])
    if image not in images:
        raise CorpusError(f"{where}: image '{image}' is not in {split_file}")
    entry = images[image]
    sentences = entry.get("sentences", [])
    if k >= len(sentences):
        raise CorpusError(
            f"{where}: caption #{k} of '{image}' does not exist ({len(sentences)} sentences in {split_file})"
        )
    split = _SPLIT_ALIASES.get(entry.get("split", ""))
    if split is None:
        raise CorpusError(
            f"{split_file}: image '{image}' has split {entry.get('split')!r}; expected one of train, restval, val, test"
        )
    return wav, image, split, sentences[k]


def read_flickr8k(
    root: str | Path, image_dir: str | Path | None = None, require_images: bool = True, skip_bad: bool = False
) -> Corpus:
    """skip_bad: leave out captions whose audio or image file is missing (listed in corpus.skipped)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"corpus folder not found: {root}")
    karpathy = next((root / n for n in KARPATHY_NAMES if (root / n).is_file()), None)
    if karpathy is None:
        raise CorpusError(f"no Karpathy split file in {root}: expected one of {', '.join(KARPATHY_NAMES)}")
    try:
        meta = json.loads(karpathy.read_text(encoding="utf-8"))
        images = {img["filename"]: img for img in meta["images"]}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CorpusError(f"{karpathy} is not a Karpathy-style split file (images[].filename): {e}") from e

    audio_dir = root / "flickr_audio"
    wav2capt = audio_dir / "wav2capt.txt"
    if not wav2capt.is_file():
        raise CorpusError(f"missing {wav2capt} (lines like 'X_3.wav X.jpg #3')")
    speakers = _read_speakers(audio_dir / "wav2spk.txt")
    wav_dir = audio_dir / "wavs"

    utterances: list[Utterance] = []
    problems = Problems(skip_bad)
    seen: set[str] = set()
    for lineno, line in enumerate(wav2capt.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        wav, image, split, sentence = _caption_of(line, f"{wav2capt}:{lineno}", images, karpathy.name)
        uid = Path(wav).stem
        if uid in seen:
            raise CorpusError(f"{wav2capt}:{lineno}: duplicate utterance '{wav}'")
        seen.add(uid)
        path = wav_dir / wav
        if not path.is_file():
            problems(uid, f"{wav2capt}:{lineno}: audio file not found: {path}")
            continue
        utterances.append(
            Utterance(
                id=uid,
                audio=str(path),
                image=image,
                speaker=speakers.get(wav, "unknown"),
                transcript=sentence.get("raw", " ".join(sentence.get("tokens", []))).strip(),
                translation=sentence.get("raw_jp"),
                split=split,
            )
        )
    if not utterances:
        raise CorpusError(f"{wav2capt} lists no utterances")
    img_dir = _find_image_dir(root, image_dir, utterances, require_images, problems)
    if img_dir is not None and skip_bad:
        utterances = [u for u in utterances if (img_dir / u.image).is_file()]
    require_splits(root, utterances)
    return Corpus(
        name=meta.get("dataset", root.name),
        root=root,
        image_dir=img_dir,
        utterances=utterances,
        skipped=problems.skipped,
    )


def _read_speakers(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise CorpusError(f"{path}:{lineno}: expected 'X_3.wav SPEAKER', got {line!r}")
        out[parts[0]] = parts[1]
    return out


def _find_image_dir(
    root: Path, image_dir, utterances: list[Utterance], required: bool, problems: Problems
) -> Path | None:
    candidates = [Path(image_dir).expanduser().resolve()] if image_dir else [root / n for n in IMAGE_DIR_NAMES]
    if image_dir and not candidates[0].is_dir():
        raise CorpusError(f"image folder not found: {candidates[0]}")
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None:
        if required:
            raise CorpusError(
                f"no image folder in {root}: expected one of {', '.join(IMAGE_DIR_NAMES)} "
                f"(or pass the folder with --image-dir / data.image_dir)"
            )
        return None
    missing = sorted({u.image for u in utterances if not (found / u.image).is_file()})
    if missing and required and not problems.skip_bad:
        raise CorpusError(
            f"{len(missing)} image file(s) missing from {found}, e.g. {found / missing[0]} "
            f"(data.skip_bad=true / --skip-bad leaves their captions out, with a report)"
        )
    for name in missing:
        for u in utterances:
            if u.image == name:
                problems(u.id, f"image file not found: {found / name}")
    return found

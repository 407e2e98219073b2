"""Importer for the Places audio caption metadata (Mortazavi 2020's P205).

    ROOT/train.json, ROOT/val.json                         (older release)
    ROOT/train_2020.json, ROOT/dev_seen_2020.json, ...     (2020 release)

Each file: {"image_base_path": ..., "audio_base_path": ..., "data": [{"uttid", "speaker",
"asr_text", "wav", "image"}, ...]}.  Base paths may be absolute or relative to ROOT; the split
comes from the file name (train* -> train, val*/dev* -> val, test* -> test).  An `image_dir`
given by the user replaces image_base_path.

The older release has no test file: its val.json holds the 1000-pair test set of Mortazavi 2020 §5.1
(and of the papers it cites), so val.json becomes the test split and a validation split of
1000 pairs is held out from train, chosen by a hash of the image name (stable across runs and
machines, whole images only), with a note.
"""

from __future__ import annotations

import json
from pathlib import Path

from vgs.data.records import Corpus, CorpusError, Problems, Utterance, inside, require_splits
from vgs.log import get_logger

log = get_logger(__name__)


_FIELDS = ("uttid", "wav", "image")


def split_of(name: str) -> str | None:
    stem = name.lower()
    if stem.startswith("train"):
        return "train"
    if stem.startswith(("val", "dev")):
        return "val"
    if stem.startswith("test"):
        return "test"
    return None


def metadata_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.json") if split_of(p.name) and _looks_like_places(p))


def _looks_like_places(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        head = f.read(4096)
    return '"audio_base_path"' in head or '"image_base_path"' in head


def read_places(
    root: str | Path, image_dir: str | Path | None = None, check_files: bool = True, skip_bad: bool = False
) -> Corpus:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"corpus folder not found: {root}")
    files = metadata_files(root)
    if not files:
        raise CorpusError(
            f"no Places metadata in {root}: expected train*.json / val*.json / test*.json "
            f"with image_base_path, audio_base_path and data[]"
        )
    utterances: list[Utterance] = []
    problems = Problems(skip_bad)
    seen: dict[str, Path] = {}
    image_dirs: set[Path] = set()
    for path in files:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            records = meta["data"]
            audio_base = _base(root, meta["audio_base_path"])
            image_base = Path(image_dir).expanduser().resolve() if image_dir else _base(root, meta["image_base_path"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CorpusError(f"{path}: not Places metadata (image_base_path, audio_base_path, data[]): {e}") from e
        image_dirs.add(image_base)
        split = split_of(path.name)
        for i, rec in enumerate(records):
            missing = [k for k in _FIELDS if k not in rec]
            if missing:
                raise CorpusError(f"{path}: data[{i}] lacks {', '.join(missing)}")
            uid = str(rec["uttid"])
            if uid in seen:
                raise CorpusError(f"{path}: data[{i}]: duplicate uttid '{uid}' (also in {seen[uid].name})")
            seen[uid] = path
            audio = audio_base / inside(str(rec["wav"]), f"{path}: data[{i}].wav")
            if check_files and not audio.is_file():
                problems(uid, f"{path}: data[{i}]: audio file not found: {audio}")
                continue
            # The image key keeps the sub-folder (Places file names repeat across categories).
            image = str((image_base / inside(str(rec["image"]), f"{path}: data[{i}].image")).relative_to(image_base))
            if check_files and not (image_base / image).is_file():
                problems(uid, f"{path}: data[{i}]: image file not found: {image_base / image}")
                continue
            utterances.append(
                Utterance(
                    id=uid,
                    audio=str(audio),
                    image=image,
                    speaker=str(rec.get("speaker", "unknown")),
                    transcript=str(rec.get("asr_text", "")),
                    translation=None,
                    split=split,
                )
            )
    if not any(u.split == "test" for u in utterances) and any(u.split == "val" for u in utterances):
        utterances = _older_release_splits(root, utterances)
    if len(image_dirs) > 1:
        raise CorpusError(
            f"{root}: metadata files name different image_base_path values; pass one image folder "
            f"(data.image_dir) or keep them equal"
        )
    require_splits(root, utterances)
    return Corpus(
        name=f"places:{root.name}",
        root=root,
        image_dir=image_dirs.pop(),
        utterances=utterances,
        skipped=problems.skipped,
    )


def _base(root: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (root / p).resolve()


HELD_OUT_VAL_PAIRS = 1000


def _older_release_splits(root: Path, utterances: list[Utterance]) -> list[Utterance]:
    """val.json -> test (the 1000-pair test set); about 1000 training pairs (whole images, by hash
    of the image name) -> val."""
    import dataclasses
    import hashlib

    train_images = sorted(
        {u.image for u in utterances if u.split == "train"}, key=lambda name: hashlib.sha256(name.encode()).hexdigest()
    )
    per_image: dict[str, int] = {}
    for u in utterances:
        if u.split == "train":
            per_image[u.image] = per_image.get(u.image, 0) + 1
    held, count = set(), 0
    for name in train_images:
        if count >= min(HELD_OUT_VAL_PAIRS, len(utterances) // 10 or 1):
            break
        held.add(name)
        count += per_image[name]
    log.info(
        f"note: {root} has no test file (older Places release): val.json is used as the test set and "
        f"{count} training pairs are held out as validation"
    )
    return [
        dataclasses.replace(u, split="test")
        if u.split == "val"
        else dataclasses.replace(u, split="val")
        if u.image in held
        else u
        for u in utterances
    ]

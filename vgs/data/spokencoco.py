"""Importer for SpokenCOCO.

    ROOT/SpokenCOCO_train.json, ROOT/SpokenCOCO_val.json   {"data": [{"image": "val2014/X.jpg",
                                                             "captions": [{"text", "speaker",
                                                             "uttid", "wav"}, ...]}, ...]}
    ROOT/wavs/...                                          audio, paths relative to ROOT
    images: data.image_dir (the COCO image root holding train2014/ and val2014/), else ROOT

Splits follow Karpathy's COCO split when `dataset_coco.json` is in ROOT (train and restval ->
train, val, test); without it the train file is train and the val file is split in half by
image into val and test, and a note says so.
"""

from __future__ import annotations

import json
from pathlib import Path

from vgs.data.records import Corpus, CorpusError, Problems, Utterance, inside, require_splits
from vgs.log import get_logger

log = get_logger(__name__)


FILES = {"train": "SpokenCOCO_train.json", "val": "SpokenCOCO_val.json"}
_KARPATHY = {"train": "train", "restval": "train", "val": "val", "test": "test"}


def is_spokencoco(root: Path) -> bool:
    return any((root / f).is_file() for f in FILES.values())


def read_spokencoco(
    root: str | Path, image_dir: str | Path | None = None, check_files: bool = True, skip_bad: bool = False
) -> Corpus:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"corpus folder not found: {root}")
    if not is_spokencoco(root):
        raise CorpusError(f"no SpokenCOCO metadata in {root}: expected {' and '.join(FILES.values())}")
    images_root = Path(image_dir).expanduser().resolve() if image_dir else root
    karpathy = _karpathy_splits(root / "dataset_coco.json")
    utterances: list[Utterance] = []
    problems = Problems(skip_bad)
    seen: set[str] = set()
    for file_split, name in FILES.items():
        path = root / name
        if not path.is_file():
            continue
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["data"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CorpusError(f"{path}: not SpokenCOCO metadata (data[] of image, captions[]): {e}") from e
        for i, entry in enumerate(entries):
            if "image" not in entry or "captions" not in entry:
                raise CorpusError(f"{path}: data[{i}] lacks image or captions")
            image = inside(str(entry["image"]), f"{path}: data[{i}].image")
            split = karpathy.get(Path(image).name) if karpathy else _fallback_split(file_split, i)
            if split is None:
                raise CorpusError(f"{path}: data[{i}]: image '{image}' is not in dataset_coco.json")
            image_missing = check_files and not (images_root / image).is_file()
            for k, cap in enumerate(entry["captions"]):
                if "uttid" not in cap or "wav" not in cap:
                    raise CorpusError(f"{path}: data[{i}].captions[{k}] lacks uttid or wav")
                uid = str(cap["uttid"])
                if uid in seen:
                    raise CorpusError(f"{path}: data[{i}].captions[{k}]: duplicate uttid '{uid}'")
                seen.add(uid)
                audio = root / inside(str(cap["wav"]), f"{path}: data[{i}].captions[{k}].wav")
                if image_missing:
                    problems(uid, f"{path}: data[{i}]: image file not found: {images_root / image}")
                    continue
                if check_files and not audio.is_file():
                    problems(uid, f"{path}: data[{i}].captions[{k}]: audio file not found: {audio}")
                    continue
                utterances.append(
                    Utterance(
                        id=uid,
                        audio=str(audio),
                        image=image,
                        speaker=str(cap.get("speaker", "unknown")),
                        transcript=str(cap.get("text", "")),
                        translation=None,
                        split=split,
                    )
                )
    if not karpathy:
        log.info(f"note: no dataset_coco.json in {root}; SpokenCOCO_val.json is split by image into val and test")
    require_splits(root, utterances)
    return Corpus(
        name=f"spokencoco:{root.name}",
        root=root,
        image_dir=images_root,
        utterances=utterances,
        skipped=problems.skipped,
    )


def _karpathy_splits(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        return {img["filename"]: _KARPATHY[img["split"]] for img in json.loads(path.read_text())["images"]}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CorpusError(f"{path}: not a Karpathy split file (images[].filename, split): {e}") from e


def _fallback_split(file_split: str, index: int) -> str:
    if file_split == "train":
        return "train"
    return "val" if index % 2 == 0 else "test"

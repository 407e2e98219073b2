"""The decoded image store (uint8 at the crop's resize size) and the store of precomputed image
features, both memory-mapped and shared by every trial."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgs.data.image_features import align_features, load_feature_table
from vgs.data.records import Corpus, CorpusError
from vgs.data.store_hash import STORE_VERSION, source_hash, write_json_atomic
from vgs.data.store_size import image_store_bytes, require_space
from vgs.log import get_logger
from vgs.progress import Progress

log = get_logger(__name__)


@dataclass
class ImageStore:
    """Decoded images, shorter side resized to `size` and centre-cropped square, uint8 NHWC; or,
    built from a user's feature file, one float32 feature vector per image."""

    path: Path
    manifest: dict

    def __getstate__(self) -> dict:  # pickled as its file and manifest: the frames stay on disk
        return {"path": self.path, "manifest": self.manifest}

    def __setstate__(self, state: dict) -> None:
        self.path, self.manifest = state["path"], state["manifest"]
        self.__post_init__()

    def __post_init__(self):
        if self.manifest.get("kind") == "files":
            self.array = FileImages(self.path, self.manifest["images"], int(self.manifest["size"]))
        else:
            self.array = np.load(self.path, mmap_mode="r")
        self.index = {name: i for i, name in enumerate(self.manifest["images"])}
        # > 0: rows are precomputed feature vectors of this size, not pixels
        self.feature_dim = int(self.manifest.get("feature_dim", 0))


class FileImages:
    """Rows of decoded images read from their files on demand (data.image_store=files): indexed like
    the decoded store's array, so a batch's images are decoded when the batch is made."""

    def __init__(self, folder: Path, names: list[str], size: int):
        self.folder, self.names, self.size = Path(folder), names, size
        self.shape = (len(names), size, size, 3)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, rows) -> np.ndarray:
        picked = np.atleast_1d(np.asarray(rows))
        out = np.stack([_load_image(str(self.folder / self.names[r]), self.size) for r in picked])
        return out if np.ndim(rows) else out[0]


def file_image_store(corpus: Corpus, size: int) -> ImageStore:
    """The corpus's image files as an ImageStore that decodes them per batch: nothing is written."""
    if corpus.image_dir is None:
        raise CorpusError(f"corpus {corpus.root} has no image folder; pass data.image_dir")
    return ImageStore(corpus.image_dir, {"kind": "files", "images": corpus.images(), "size": size})


def _load_image(path: str, size: int) -> np.ndarray:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            # PIL only warns between its pixel limit and twice that, then decodes gigabytes
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise CorpusError(f"image file {path} is too large to decode (a decompression bomb?): {e}") from e
    except (OSError, ValueError) as e:
        raise CorpusError(f"corrupt or unreadable image file {path}: {e}") from e


def build_image_store(corpus: Corpus, size: int, store_dir: str | Path, skip_bad: bool = False) -> ImageStore:
    """skip_bad: leave out corrupt or unreadable images (listed in the manifest and a report)
    instead of stopping; their captions then have no image and are not used."""
    if corpus.image_dir is None:
        raise CorpusError(f"corpus {corpus.root} has no image folder; pass data.image_dir")
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    names = corpus.images()
    params = {"version": STORE_VERSION, "size": size}
    digest = source_hash([(n, str(corpus.image_dir / n)) for n in names], params, store_dir)
    path = store_dir / f"images-{size}-{digest}.npy"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return ImageStore(path, json.loads(manifest_path.read_text()))
    require_space(
        store_dir,
        image_store_bytes(len(names), size),
        f"the image store of {corpus.name} ({len(names)} images at {size}x{size} px, uint8)",
    )
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    progress = Progress(f"images ({size}px) {corpus.name}", total=len(names), unit="img")
    kept, skipped = [], []
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3))
        for name in names:
            try:
                out[len(kept)] = _load_image(str(corpus.image_dir / name), size)
                kept.append(name)
            except CorpusError as e:
                if not skip_bad:
                    raise CorpusError(
                        f"{e} (data.skip_bad=true / --skip-bad leaves such files out, with a report)"
                    ) from e
                skipped.append({"id": name, "reason": str(e)})
            progress.update(1)
        out.flush()
        if skipped:  # the rows of the images kept, in order
            np.save(tmp.with_name(tmp.name + ".kept.npy"), np.asarray(out[: len(kept)]))
            del out
            os.replace(tmp.with_name(tmp.name + ".kept.npy"), tmp)
        else:
            del out
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    progress.close()
    if not kept:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"corpus {corpus.root}: no readable image")
    os.replace(tmp, path)
    manifest = {"params": params, "source_hash": digest, "corpus": str(corpus.root), "images": kept, "skipped": skipped}
    write_json_atomic(manifest_path, manifest)
    if skipped:
        report = path.with_suffix(".skipped.json")
        write_json_atomic(report, {"store": str(path), "skipped": skipped})
        log.warning(f"skipped {len(skipped)} unreadable image(s); report: {report}")
    return ImageStore(path, manifest)


def build_feature_image_store(corpus: Corpus, feature_file: str | Path, store_dir: str | Path) -> ImageStore:
    """Precomputed image features (see vgs.data.image_features) in the corpus's image order."""

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    names = corpus.images()
    feature_file = Path(feature_file).expanduser().resolve()
    digest = source_hash([("features", str(feature_file))], {"version": STORE_VERSION, "images": names}, store_dir)
    path = store_dir / f"imagefeats-{digest}.npy"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return ImageStore(path, json.loads(manifest_path.read_text()))
    table_names, feats = load_feature_table(feature_file)
    aligned = align_features(corpus, table_names, feats, str(feature_file))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, aligned)
    os.replace(tmp, path)
    manifest = {
        "params": {"version": STORE_VERSION, "source": str(feature_file)},
        "source_hash": digest,
        "corpus": str(corpus.root),
        "images": names,
        "feature_dim": int(aligned.shape[1]),
    }
    write_json_atomic(manifest_path, manifest)
    log.info(f"image features: {len(names)} images x {aligned.shape[1]} from {feature_file}")
    return ImageStore(path, manifest)

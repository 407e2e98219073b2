"""Precomputed image features (Higy et al. 2020 and Chrupała 2019: ResNet-152 2048-d, mean of ten crops; VGG-16 4096-d).

Reading a user's file, keyed by image file name:
    .npz       one array per image, the key being the file name; or arrays `names` + `features`
    .npy       a (N, D) array, names one per line in FILE.names.txt (or FILE without .npy + .names.txt)
    .parquet   a name column (image | filename | name) and a list column `features`, or one numeric
               column per dimension
    .pt/.pth   platalea's layout: torch.save({"filenames": [...], "features": tensor or list})
Images are matched by file name; where the file holds bare names (Flickr8K) and the corpus keys
carry sub-folders (Places), the base name is tried as well.

Computing them: `python -m vgs.tools.extract_image_features --data ROOT --arch resnet152 --weights FILE`
(or `vgs features images`), from torchvision weights the user has on disk; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vgs.config import ConfigError
from vgs.data.records import Corpus, CorpusError

NAME_COLUMNS = ("image", "filename", "name")
# the size of each torchvision model's penultimate features (vgs.tools.extract_image_features)
FEATURE_DIMS = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "resnet152": 2048,
    "vgg16": 4096,
    "vgg19": 4096,
    "clip_vit_b32": 512,  # CLIP ViT-B/32's image embedding (SpeechCLIP): computed on the user's side
}
RECORD_SUFFIX = ".vgs.json"  # beside a feature file: the network `vgs features images` computed it with


def record_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def recorded_network(path: str | Path) -> str | None:
    """The torchvision architecture `vgs features images` recorded beside a feature file (None: no
    record, e.g. a file made elsewhere)."""
    try:
        return json.loads(record_path(path).read_text()).get("arch")
    except (OSError, ValueError):
        return None


def check_feature_network(path: str | Path, expected: str) -> None:
    """A feature file against the network a configuration names (model.image.features_from): its
    dimension, and the architecture recorded with it where there is a record.  A file of another
    network (2048-d ResNet-152 features where Chrupała 2019 maps VGG-16's 4096) is refused by name."""
    if not expected:
        return
    dim = feature_dim(path)
    recorded, want = recorded_network(path), FEATURE_DIMS.get(expected)
    found = f"{dim}-d" + (f" {recorded}" if recorded else "")
    if (want is not None and dim != want) or (recorded is not None and recorded != expected):
        raise ConfigError(
            f"data.image_features {path} holds {found} features, but the configuration's image side maps "
            f"{expected} features ({want}-d, model.image.features_from={expected}): extract them with "
            f"`vgs features images --arch {expected} ...`, or, to train on these instead (not the paper's "
            f"setup), set model.image.features_from={recorded or 'the network they come from'}"
        )


def load_feature_table(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(names, float32 (N, D) array) from a feature file in any supported format."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise CorpusError(f"image feature file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            names, feats = _from_npz(path)
        elif suffix == ".npy":
            names, feats = _from_npy(path)
        elif suffix == ".parquet":
            names, feats = _from_parquet(path)
        elif suffix in (".pt", ".pth"):
            names, feats = _from_platalea(path)
        else:
            raise CorpusError(f"{path}: unknown image feature format '{suffix}' (use .npz, .npy, .parquet or .pt)")
    except CorpusError:
        raise
    except Exception as e:  # numpy/pyarrow/torch raise many types for malformed files
        raise CorpusError(f"cannot read image features from {path}: {e}") from e
    feats = np.asarray(feats, dtype=np.float32)
    if feats.ndim != 2 or len(names) != len(feats):
        raise CorpusError(
            f"{path}: expected one feature vector per image name, got {len(names)} names and an "
            f"array of shape {feats.shape}"
        )
    if len(set(names)) != len(names):
        raise CorpusError(f"{path}: duplicate image names")
    if not np.isfinite(feats).all():
        raise CorpusError(f"{path}: features contain NaN or infinite values")
    return [str(n) for n in names], feats


def feature_dim(path: str | Path) -> int:
    """The feature size of a file, from its header where the format has one (a Places-sized file is
    gigabytes), else from reading it."""
    import zipfile

    path = Path(path).expanduser().resolve()
    try:
        if path.suffix.lower() == ".npy":
            return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[1])
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as z, z.open("features.npy") as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                return int(read_header(f)[0][1])  # the header only, not the data
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile):
        pass  # no such member (one array per image), or another layout: read it in full below
    return int(load_feature_table(path)[1].shape[1])


def _from_npz(path: Path):
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        for name_key in ("names", "filenames"):
            if name_key in keys and "features" in keys:
                return [str(n) for n in z[name_key]], z["features"]
        return keys, np.stack([z[k].reshape(-1) for k in keys]) if keys else np.zeros((0, 0))


def _from_npy(path: Path):
    candidates = [path.with_name(path.name + ".names.txt"), path.with_suffix(".names.txt")]
    names_file = next((c for c in candidates if c.is_file()), None)
    if names_file is None:
        raise CorpusError(f"{path}: a .npy feature array needs its image names, one per line, in {candidates[1]}")
    names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return names, np.load(path, allow_pickle=False)


def _from_parquet(path: Path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    name_col = next((c for c in NAME_COLUMNS if c in table.column_names), None)
    if name_col is None:
        raise CorpusError(f"{path}: no image name column (one of {', '.join(NAME_COLUMNS)})")
    names = table.column(name_col).to_pylist()
    if "features" in table.column_names:
        return names, np.array(table.column("features").to_pylist(), dtype=np.float32)
    rest = [c for c in table.column_names if c != name_col]
    return names, np.stack([table.column(c).to_numpy() for c in rest], 1)


def _from_platalea(path: Path):
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or "filenames" not in obj or "features" not in obj:
        raise CorpusError(f"{path}: expected platalea's layout, a dict with 'filenames' and 'features'")
    feats = obj["features"]
    feats = (
        torch.stack([torch.as_tensor(f).reshape(-1) for f in feats])
        if isinstance(feats, (list, tuple))
        else torch.as_tensor(feats).reshape(len(obj["filenames"]), -1)
    )
    return list(obj["filenames"]), feats.float().numpy()


def align_features(corpus: Corpus, names: list[str], feats: np.ndarray, source: str) -> np.ndarray:
    """Rows of `feats` in the order of corpus.images(); names every image without features."""
    index = {n: i for i, n in enumerate(names)}
    rows, missing = [], []
    for image in corpus.images():
        i = index.get(image, index.get(Path(image).name))
        if i is None:
            missing.append(image)
        rows.append(i)
    if missing:
        raise CorpusError(
            f"{source} has no features for {len(missing)} of the corpus's {len(rows)} images, e.g. '{missing[0]}'"
        )
    return feats[np.array(rows, dtype=np.int64)]


def write_feature_file(path: Path, names: list[str], feats: np.ndarray, network: dict | None = None) -> None:
    """.npy + .names.txt (any name, including sub-folders) or .npz keyed by name; written atomically.
    `network` (arch, weights hash, ...): recorded beside it as FILE.vgs.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if network is not None:
        record = record_path(path)
        tmp_record = record.with_name(record.name + f".tmp{os.getpid()}")
        tmp_record.write_text(json.dumps({**network, "dim": int(feats.shape[1]), "images": len(names)}, indent=1))
        os.replace(tmp_record, record)
    if path.suffix == ".npz":
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, names=np.array(names), features=feats.astype(np.float32))
        os.replace(tmp, path)
        return
    if path.suffix != ".npy":
        raise CorpusError(f"--out must end in .npz or .npy, got {path}")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, feats.astype(np.float32))
    names_tmp = path.with_name(path.stem + f".names.txt.tmp{os.getpid()}")
    names_tmp.write_text("\n".join(names) + "\n", encoding="utf-8")
    os.replace(names_tmp, path.with_suffix(".names.txt"))
    os.replace(tmp, path)


def describe(path: Path, feats: np.ndarray) -> str:
    return json.dumps({"file": str(path), "images": int(feats.shape[0]), "dim": int(feats.shape[1])})

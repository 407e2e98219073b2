"""Compute image features with a torchvision model from weights on disk (never downloaded).

    python -m vgs.tools.extract_image_features --data ROOT --arch resnet152 --weights resnet152.pth --out feats.npz
    vgs features images ...    (the same)

As in Higy et al. 2020 and Chrupała 2019: each image resized (shorter side 256), ten 224 crops (four corners and the
centre, and their mirror images), ImageNet normalisation, the penultimate layer (ResNet: 2048-d
average pool; VGG-16: 4096-d fc7) averaged over the ten crops.  The output is read back with
data.image_features=FILE.  Work is saved in chunks beside the output, so an interrupted run
continues where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from vgs.data.corpora import read_corpus
from vgs.data.image_features import describe, write_feature_file
from vgs.data.records import CorpusError
from vgs.device import pick_device
from vgs.log import report_error
from vgs.progress import Progress

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg16", "vgg19")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHUNK = 256


def feature_extractor(arch: str, weights: str | Path):
    """The torchvision model `arch` with the user's weights, cut before its classifier."""
    import torch
    import torchvision

    if arch not in ARCHS:
        raise CorpusError(f"unknown --arch '{arch}'; known: {', '.join(ARCHS)}")
    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise CorpusError(f"weights file not found: {weights}")
    model = getattr(torchvision.models, arch)(weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorpusError(f"cannot read weights {weights}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise CorpusError(f"{weights} does not hold {arch} weights: {str(e).splitlines()[0]}") from e
    if arch.startswith("resnet"):
        model.fc = torch.nn.Identity()
    else:
        model.classifier = model.classifier[:-1]  # up to fc7 (+ ReLU, dropout is a no-op in eval)
    return model.eval()


def ten_crops(path: Path, resize: int = 256, crop: int = 224):
    """(10, 3, crop, crop) normalised tensor of one image."""
    import torch
    import torchvision.transforms.functional as TF
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = TF.resize(im.convert("RGB"), resize)
    except (OSError, ValueError) as e:
        raise CorpusError(f"corrupt or unreadable image file {path}: {e}") from e
    crops = TF.ten_crop(im, crop)
    x = torch.stack([TF.to_tensor(c) for c in crops])
    return TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)


def compute(
    names: list[str], image_dir: Path, arch: str, weights: str | Path, out: Path, batch: int = 16, device: str = "auto"
) -> np.ndarray:
    import torch

    dev = pick_device(device)
    model = feature_extractor(arch, weights).to(dev)
    key = hashlib.sha256(f"{arch}\0{Path(weights).resolve()}\0{image_dir}".encode()).hexdigest()[:12]
    parts = out.with_name(out.name + f".parts-{key}")
    parts.mkdir(parents=True, exist_ok=True)
    progress = Progress(f"image features ({arch})", total=len(names), unit="img")
    chunks = []
    for start in range(0, len(names), CHUNK):
        chunk_names = names[start : start + CHUNK]
        digest = hashlib.sha256("\n".join(chunk_names).encode()).hexdigest()[:12]
        path = parts / f"{start // CHUNK:06d}-{digest}.npy"
        if not path.exists():
            rows = []
            for b in range(0, len(chunk_names), batch):
                x = torch.stack([ten_crops(image_dir / n) for n in chunk_names[b : b + batch]])  # (B, 10, 3, H, W)
                with torch.no_grad():
                    f = model(x.flatten(0, 1).to(dev)).float().view(len(x), 10, -1).mean(1)
                rows.append(f.cpu().numpy())
                progress.update(len(x))
            tmp = path.with_name(path.stem + ".tmp.npy")
            np.save(tmp, np.concatenate(rows))
            tmp.replace(path)
        else:
            progress.update(len(chunk_names))
        chunks.append(path)
    progress.close()
    feats = np.concatenate([np.load(c) for c in chunks])
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    write_feature_file(out, names, feats, {"arch": arch, "weights_sha256": digest, "crops": 10, "by": "vgs"})
    for c in chunks:
        c.unlink()
    parts.rmdir()
    return feats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.tools.extract_image_features", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="corpus folder (any supported layout)")
    p.add_argument("--image-dir", help="image folder, where the layout does not say")
    p.add_argument("--arch", default="resnet152", help=f"one of {', '.join(ARCHS)}")
    p.add_argument("--weights", required=True, help="torchvision state_dict file for --arch")
    p.add_argument("--out", required=True, help="output file, .npz or .npy (+ .names.txt)")
    p.add_argument("--batch", type=int, default=16, help="images per forward pass (x10 crops)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    a = p.parse_args(argv)
    try:
        corpus = read_corpus(a.data, image_dir=a.image_dir)
        if corpus.image_dir is None:
            raise CorpusError(f"{a.data} has no image folder; pass --image-dir")
        out = Path(a.out).expanduser().resolve()
        feats = compute(corpus.images(), corpus.image_dir, a.arch, a.weights, out, a.batch, a.device)
    except CorpusError as e:
        return report_error(e)
    print(describe(out, feats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Precomputed image features: every supported file format, the ten-crop command with weights from
disk, and training with features instead of pixels."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision

from vgs.config import apply_overrides, base_config
from vgs.data.image_features import load_feature_table
from vgs.data.records import CorpusError


@pytest.fixture()
def table():
    rng = np.random.default_rng(0)
    return [f"img_{i}.jpg" for i in range(5)], rng.normal(size=(5, 7)).astype(np.float32)


def test_every_format_reads_back_the_same_table(table, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    names, feats = table
    np.savez(tmp_path / "keyed.npz", **{n: f for n, f in zip(names, feats)})
    np.savez(tmp_path / "arrays.npz", names=np.array(names), features=feats)
    np.save(tmp_path / "plain.npy", feats)
    (tmp_path / "plain.names.txt").write_text("\n".join(names) + "\n")
    pq.write_table(pa.table({"image": names, "features": feats.tolist()}), tmp_path / "lists.parquet")
    pq.write_table(pa.table({"filename": names, **{f"d{j}": feats[:, j] for j in range(7)}}), tmp_path / "wide.parquet")
    torch.save({"filenames": names, "features": [torch.from_numpy(f) for f in feats]}, tmp_path / "platalea.pt")
    for f in ("keyed.npz", "arrays.npz", "plain.npy", "lists.parquet", "wide.parquet", "platalea.pt"):
        got_names, got = load_feature_table(tmp_path / f)
        assert got_names == names, f
        np.testing.assert_allclose(got, feats, rtol=1e-6, err_msg=f)


def test_bad_feature_files_are_named(table, tmp_path):
    names, feats = table
    with pytest.raises(CorpusError, match="image feature file not found"):
        load_feature_table(tmp_path / "none.npz")
    np.save(tmp_path / "lonely.npy", feats)
    with pytest.raises(CorpusError, match="needs its image names"):
        load_feature_table(tmp_path / "lonely.npy")
    (tmp_path / "lonely.names.txt").write_text("a.jpg\n")
    with pytest.raises(CorpusError, match="1 names and an array of shape"):
        load_feature_table(tmp_path / "lonely.npy")
    bad = feats.copy()
    bad[1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", names=np.array(names), features=bad)
    with pytest.raises(CorpusError, match="NaN"):
        load_feature_table(tmp_path / "nan.npz")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(CorpusError, match="unknown image feature format '.csv'"):
        load_feature_table(tmp_path / "x.csv")


def test_ten_crop_command_with_weights_from_disk(flickr1d, tmp_path):
    root, images = flickr1d
    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    out = tmp_path / "feats.npz"
    cmd = [
        sys.executable,
        "-m",
        "vgs.cli",
        "features",
        "images",
        "--data",
        str(root),
        "--image-dir",
        str(images),
        "--arch",
        "resnet18",
        "--weights",
        str(weights),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"file": str(out), "images": 10, "dim": 512}
    names, feats = load_feature_table(out)
    assert len(names) == 10 and not list(tmp_path.glob("*.parts-*"))

    from vgs.tools.extract_image_features import feature_extractor, ten_crops

    model = feature_extractor("resnet18", weights)
    first = sorted(images.iterdir())[0]
    with torch.no_grad():  # batched command output = one image on its own
        alone = model(ten_crops(first)).mean(0).numpy()
    np.testing.assert_allclose(alone, feats[names.index(first.name)], rtol=1e-4, atol=1e-5)

    # A mirrored image has the same ten crops, mirrored, so the same mean feature (an image whose
    # resized width leaves an even margin, so that the centre crop is symmetric too).
    from PIL import Image

    Image.open(first).convert("RGB").resize((300, 256)).save(tmp_path / "a.png")
    Image.open(tmp_path / "a.png").transpose(Image.FLIP_LEFT_RIGHT).save(tmp_path / "mirror.png")
    with torch.no_grad():
        a, b = (model(ten_crops(tmp_path / f)).mean(0).numpy() for f in ("a.png", "mirror.png"))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)

    wrong = subprocess.run([x if x != "resnet18" else "vgg16" for x in cmd], capture_output=True, text=True)
    assert wrong.returncode == 2 and "does not hold vgg16 weights" in wrong.stderr


def test_training_on_precomputed_features(tiny_corpus, tmp_path):
    """Features = 8x8 thumbnails of the images (192-d): the image side is a linear layer."""
    from PIL import Image

    from vgs.data.flickr8k import read_flickr8k
    from vgs.train import fit

    corpus = read_flickr8k(tiny_corpus)
    names = corpus.images()
    feats = np.stack(
        [
            np.asarray(Image.open(corpus.image_dir / n).convert("RGB").resize((8, 8)), np.float32).ravel() / 255
            for n in names
        ]
    )
    np.save(tmp_path / "thumbs.npy", feats)
    (tmp_path / "thumbs.names.txt").write_text("\n".join(names))
    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {
            "data.root": str(tiny_corpus),
            "data.store": str(tmp_path / "s"),
            "data.image_features": str(tmp_path / "thumbs.npy"),
            "train.epochs": 2,
        },
    )
    summary = fit(cfg, out_dir=tmp_path / "run")
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert state["model"]["image.net.weight"].shape == (cfg.model.latent, 192)
    assert summary["epoch"] == 2 and 0 <= summary["val_s2i_r10"] <= 1

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FLICKR1D = Path(os.environ.get("VGS_FLICKR1D", SHARED / "fixtures" / "flickr1d"))
REFERENCE_STEP = SHARED / "bench" / "reference_step.py"


@pytest.fixture(scope="session")
def vgs_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("vgs_home")
    os.environ["VGS_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def tiny_corpus(vgs_home) -> Path:
    """A small built-in corpus, generated once per test session (a few seconds)."""
    from vgs.data.synth import generate

    return generate(vgs_home / "tiny", images=300, seed=3, speakers=20, val_images=40, test_images=20, quiet=True)


@pytest.fixture()
def flickr1d(tmp_path) -> tuple[Path, Path]:
    """The real Flickr8K slice (read in place) and a folder of placeholder images drawn for it."""
    if not (FLICKR1D / "flickr_audio" / "wav2capt.txt").exists():
        pytest.skip(f"flickr1d fixture not found at {FLICKR1D} (set VGS_FLICKR1D to its path)")
    import json

    from PIL import Image, ImageDraw

    images = tmp_path / "images"
    images.mkdir()
    meta = json.loads((FLICKR1D / "dataset.json").read_text())
    for i, img in enumerate(meta["images"]):
        im = Image.new("RGB", (120, 90), (30 * i % 255, 80, 200 - 15 * i))
        ImageDraw.Draw(im).ellipse((10 + 5 * i, 10, 60 + 5 * i, 60), fill=(250, 250, 0))
        im.save(images / img["filename"])
    return FLICKR1D, images

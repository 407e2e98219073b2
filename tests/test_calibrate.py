"""vgs calibrate: the speech model, the same budget from text, more training and more capacity,
and the speech / text ratio; the built-in corpus's caption ambiguity."""

import subprocess
import sys

import pytest

from vgs.data.scenes import images_fitting, mentioned_objects


def test_named_objects_and_images_that_fit_them(tiny_corpus):
    assert mentioned_objects("i can see a small red circle a big blue star and a green ring") == [
        ("small", "red", "circle"),
        ("big", "blue", "star"),
        (None, "green", "ring"),
    ]
    assert mentioned_objects("four shapes on a grey background including a pink cross") == [(None, "pink", "cross")]
    counts = images_fitting(tiny_corpus, "val")
    assert len(counts) == 40 * 5 and counts.min() >= 1  # a caption always fits its own image
    assert counts.max() > 1  # and some fit others too


@pytest.mark.slow
def test_calibrate_prints_the_table_and_the_speech_text_ratio(tiny_corpus, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "vgs.tools.calibrate",
        "--data",
        str(tiny_corpus),
        "--epochs",
        "1",
        f"data.store={tmp_path / 's'}",
        "data.image_resize=40",
        "data.image_crop=32",
        "model.latent=32",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "minutes" not in line]
    assert len(rows) == 4
    assert "text-image, same image side and budget, 1 epochs" in rows[1] and "2 epochs" in rows[2]
    assert "DG1A64-tiny (2x latent)" in rows[3]
    ratio = next(line for line in r.stdout.splitlines() if line.startswith("speech / text ratio"))
    assert float(ratio.rsplit(":", 1)[1]) > 0
    assert "of the 40 validation images" in r.stdout

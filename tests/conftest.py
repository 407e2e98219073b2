from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FLICKR1D = Path(os.environ.get("VGS_FLICKR1D", SHARED / "fixtures" / "flickr1d"))
REFERENCE_STEP = SHARED / "bench" / "reference_step.py"


def load_script(name: str):
    """scripts/NAME.py as a module: the development tools live outside the installed package."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(corpus: Path | None = None, **overrides):
    """The suite's one builder of small configs: cpu-tiny on `corpus` (when given) with dotted
    `overrides` (pass them as **{"train.epochs": 1, ...})."""
    from vgs.config import apply_overrides, base_config

    data = {"data.root": str(corpus)} if corpus is not None else {}
    return apply_overrides(base_config("cpu-tiny"), {**data, **overrides})


@pytest.fixture(scope="session")
def test_corpora(tmp_path_factory) -> Path:
    """Where the run's generated corpora live: one folder for all its test processes (pytest-xdist's
    workers, and a pytest a test runs again, through VGS_TEST_CORPORA), so that each corpus is
    synthesised once, by whichever process asks first, while the others wait (a minute or more of
    eSpeak NG for the learning corpus)."""
    if "VGS_TEST_CORPORA" not in os.environ:
        base = tmp_path_factory.getbasetemp()
        os.environ["VGS_TEST_CORPORA"] = str((base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "corpora")
    folder = Path(os.environ["VGS_TEST_CORPORA"])
    (folder / "builtin").mkdir(parents=True, exist_ok=True)
    return folder


def share_builtin_corpora(home: Path, corpora: Path) -> Path:
    """A VGS_HOME whose built-in corpora (data.builtin_*) are the run's shared ones: vgs locks each
    while it is generated, so processes that need the same one build it once."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "corpora").exists():
        (home / "corpora").symlink_to(corpora / "builtin", target_is_directory=True)
    return home


def generated(folder: Path, **kwargs) -> Path:
    from filelock import FileLock

    from vgs.data.synth import generate

    with FileLock(f"{folder}.lock"):  # another process generating it: wait, then read what it wrote
        return generate(folder, **kwargs)


# The learning tests' recipe: cpu-tiny's 32-px images with cpu-small's speech side (128 conv channels,
# N = 256, wsd schedule, 8 epochs), every caption an example (tests/test_train.py, test_frontends.py)
LEARNING_RECIPE = {
    "model.speech.conv_channels": 128,
    "model.latent": 256,
    "train.epochs": 8,
    "train.captions_per_image": 0,
    "train.batch_size": 32,
    "train.lr": 3e-3,
    "train.scheduler": "wsd",
}


def kill_part_way(code: str, parts: Path, at_least: int, timeout: float) -> int:
    """Run `code` (a store build) in a Python process and SIGKILL it once `parts` holds at least
    `at_least` finished shards: the shards it finished."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(parts.glob("*.json"))) < at_least:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(list(parts.glob("*.json")))


@pytest.fixture(scope="session")
def vgs_home(tmp_path_factory, test_corpora) -> Path:
    # VGS_TEST_HOME: a home another test session made (a test that runs pytest again reuses its corpora)
    home = Path(os.environ.get("VGS_TEST_HOME") or tmp_path_factory.mktemp("vgs_home"))
    os.environ["VGS_HOME"] = str(share_builtin_corpora(home, test_corpora))
    return home


@pytest.fixture(scope="session")
def smoke_corpus(vgs_home) -> Path:
    """The smoke sweep's built-in corpus in the session's VGS_HOME. A dry run plans only data that
    exists, and the sweeps that would build it may not run first (`-m "not slow"`, or alone)."""
    from vgs.data.prepare import ensure_builtin
    from vgs.search_spaces.spec import load

    return ensure_builtin(load("smoke").base_config().data)


@pytest.fixture(scope="session")
def tiny_corpus(test_corpora) -> Path:
    """A small built-in corpus, generated once per test run (a few seconds)."""
    return generated(test_corpora / "tiny", images=300, seed=3, speakers=20, val_images=40, test_images=20)


@pytest.fixture(scope="session")
def learning_corpus(test_corpora) -> Path:
    """The built-in corpus for the learning tests: 600 images, 480 training, 100 validation (chance
    R@10 0.1, and one image moves a score by 0.01), 20 test.  Generated once per test run (about a
    minute on 2 cores)."""
    return generated(test_corpora / "learning", images=600, seed=3, speakers=20, val_images=100, test_images=20)


@pytest.fixture()
def threads() -> int:
    """Torch threads of the learning tests' training: 1 unless VGS_TEST_THREADS says otherwise
    (scripts/margins.py runs them with 1 and 2, and with ATEN_CPU_CAPABILITY=default)."""
    return int(os.environ.get("VGS_TEST_THREADS", "1"))


class Margin:
    """Asserts a score against its threshold and, where VGS_MARGINS names a file, appends the test,
    the score, the threshold and the margin to it as a JSON line (scripts/margins.py's table)."""

    def __init__(self, test: str):
        self.test = test

    def at_least(self, what: str, value: float, threshold: float) -> None:
        self._record(what, value, threshold, value - threshold)
        assert value >= threshold, f"{what} = {value:.4g}, below its threshold {threshold:.4g}"

    def at_most(self, what: str, value: float, threshold: float) -> None:
        self._record(what, value, threshold, threshold - value)
        assert value <= threshold, f"{what} = {value:.4g}, above its threshold {threshold:.4g}"

    def _record(self, what: str, value: float, threshold: float, margin: float) -> None:
        if os.environ.get("VGS_MARGINS"):
            line = {"test": self.test, "what": what, "value": value, "threshold": threshold, "margin": margin}
            line.update(threads=os.environ.get("VGS_TEST_THREADS", "1"), isa=os.environ.get("ATEN_CPU_CAPABILITY", ""))
            with open(os.environ["VGS_MARGINS"], "a") as f:
                f.write(json.dumps(line) + "\n")


@pytest.fixture()
def margin(request) -> Margin:
    return Margin(request.node.nodeid)


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


# Places and SpokenCOCO layouts written from the built-in corpus's real eSpeak NG recordings and
# images (symlinks), for the importer, training and sweep tests.


def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


@pytest.fixture()
def places(tiny_corpus, tmp_path):
    """2020-release Places layout: split files, relative base paths, category sub-folders."""
    from vgs.data.flickr8k import read_flickr8k

    corpus = read_flickr8k(tiny_corpus)
    root = tmp_path / "places"
    files = {"train": "train_2020.json", "val": "dev_seen_2020.json", "test": "test_seen_2020.json"}
    data = {s: [] for s in files}
    for u in corpus.utterances:
        image = f"s/scene/{u.image}"
        _link(corpus.image_dir / u.image, root / "images" / image) if not (root / "images" / image).exists() else None
        _link(u.audio, root / "audio" / "wavs" / f"{u.id}.wav")
        data[u.split].append(
            {"uttid": u.id, "speaker": u.speaker, "asr_text": u.transcript, "wav": f"wavs/{u.id}.wav", "image": image}
        )
    for split, name in files.items():
        (root / name).write_text(
            json.dumps({"image_base_path": "images", "audio_base_path": "audio", "data": data[split]})
        )
    return root


@pytest.fixture()
def spokencoco(tiny_corpus, tmp_path):
    """SpokenCOCO layout with a Karpathy dataset_coco.json and a separate COCO image root."""
    from vgs.data.flickr8k import read_flickr8k

    corpus = read_flickr8k(tiny_corpus)
    root, images = tmp_path / "spokencoco", tmp_path / "coco"
    by_image: dict[str, list] = {}
    split_of = {}
    for u in corpus.utterances:
        by_image.setdefault(u.image, []).append(u)
        split_of[u.image] = u.split
    files = {"train": [], "val": []}
    karpathy = []
    for name, utts in by_image.items():
        folder = "train2014" if split_of[name] == "train" else "val2014"
        _link(corpus.image_dir / name, images / folder / name)
        caps = []
        for u in utts:
            _link(u.audio, root / "wavs" / folder / f"{u.id}.wav")
            caps.append({"text": u.transcript, "speaker": u.speaker, "uttid": u.id, "wav": f"wavs/{folder}/{u.id}.wav"})
        files["train" if folder == "train2014" else "val"].append({"image": f"{folder}/{name}", "captions": caps})
        karpathy.append({"filename": name, "split": {"train": "restval", "val": "val", "test": "test"}[split_of[name]]})
    for split, entries in files.items():
        (root / f"SpokenCOCO_{split}.json").write_text(json.dumps({"data": entries}))
    (root / "dataset_coco.json").write_text(json.dumps({"images": karpathy}))
    return root, images


# The seconds each test took in a full run (scripts/test_durations.py refreshes it), for the order
# alone: the longest start first, so the two test processes finish together.
DURATIONS = json.loads((Path(__file__).with_name("durations.json")).read_text())


def pytest_collection_modifyitems(config, items):
    """Longest first, as scripts/test.sh runs them (pytest -n 2 --maxschedchunk 1: each process takes
    the next test when it is ready, and holds one more queued).  The first four go out two to each
    process at once, so they are paired longest with fourth and second with third; in collection
    order, or by markers, one process had run every end-to-end test in a row (30 minutes in all)."""
    items.sort(key=lambda item: -DURATIONS.get(item.nodeid.split("/", 1)[-1], 0.5))
    if len(items) >= 4:
        items[1:4] = [items[3], items[1], items[2]]

"""A Places-size data path on a small machine: a Places-layout corpus of N utterances made of hard
links to a few real recordings and images under distinct names (no new audio, no new disk but the
metadata), and a benchmark of what grows with N.

    python scripts/simulate_places.py build OUT --utterances 100000 [--source CORPUS]
    python scripts/simulate_places.py bench --sizes 10000,100000 [--work DIR] [--json FILE]
    python scripts/simulate_places.py images [--utterances 10000]   (decoded store vs files)

The source is any corpus vgs reads (default: the built-in corpus of the cpu-tiny recipe, generated
if missing); its recordings and images are linked round-robin, five captions per image, as Places
has one caption per image but SpokenCOCO five.  The bench prints, for each N: the store build time
and disk (MFCC, images), the driver's full check of a built store, a trial's first prepare()
(`verified=True`, in a fresh process) and its resident memory, and the time to the first batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vgs.config import base_config
from vgs.data.batching import PairSplit
from vgs.data.corpora import read_corpus
from vgs.data.prepare import ensure_builtin, opened_data, prepare
from vgs.models.ssl import featuriser_for

CAPTIONS_PER_IMAGE = 5
HELD_OUT = 500  # validation and test utterances each


def build(out: Path, utterances: int, source: Path) -> Path:
    """The Places-layout corpus at `out` (train/dev/test_2020.json, wavs/, images/)."""

    corpus = read_corpus(source)
    recordings = [u.audio for u in corpus.utterances]
    images = [str(corpus.image_dir / name) for name in corpus.images()]
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    records: dict[str, list[dict]] = {"train_2020.json": [], "dev_seen_2020.json": [], "test_seen_2020.json": []}
    for i in range(utterances):
        image = f"{i // CAPTIONS_PER_IMAGE:07d}{Path(images[0]).suffix}"
        wav = f"{i:08d}.wav"
        _link(recordings[i % len(recordings)], out / "wavs" / wav)
        _link(images[(i // CAPTIONS_PER_IMAGE) % len(images)], out / "images" / image)
        block = i // CAPTIONS_PER_IMAGE * CAPTIONS_PER_IMAGE  # whole images per split
        split = "dev_seen_2020.json" if block < HELD_OUT else "test_seen_2020.json" if block < 2 * HELD_OUT else None
        entry = {"uttid": f"sim{i:08d}", "speaker": f"spk{i % 50}", "asr_text": "", "wav": wav, "image": image}
        records[split or "train_2020.json"].append(entry)
    for name, data in records.items():
        meta = {"image_base_path": "images", "audio_base_path": "wavs", "data": data}
        (out / name).write_text(json.dumps(meta))
    return out


def _link(src: str, dst: Path) -> None:
    if not dst.exists():
        os.link(src, dst)


def default_source() -> Path:

    return ensure_builtin(base_config("cpu-tiny").data)


def data_config(root: Path, store: Path):

    cfg = base_config("cpu-tiny").data
    cfg.root, cfg.store, cfg.layout = str(root), str(store), "places"
    return cfg


def trial_probe(root: str, store: str) -> dict:
    """What one trial pays for its data, in this (fresh) process: prepare(verified=True), the first
    training batch, and the resident memory after both."""

    cfg = base_config("cpu-tiny")
    cfg.data = data_config(Path(root), Path(store))
    t0 = time.time()
    data = opened_data(cfg.data, featuriser_for(cfg))  # as a trial opens its data: the driver's check, read
    first_prepare = time.time() - t0
    t1 = time.time()
    opened_data(cfg.data, featuriser_for(cfg))  # the next trial in the same (reused) worker process
    second_prepare = time.time() - t1
    split = PairSplit(data, "train", None, None)
    batch = split.epoch_batches(np.random.default_rng(0), cfg.train.batch_size, cfg.train.captions_per_image)[0]
    split.batch(batch, cfg.data.image_crop, np.random.default_rng(0))
    return {
        "trial_first_prepare_s": first_prepare,
        "trial_second_prepare_s": second_prepare,
        "trial_first_batch_s": time.time() - t0,
        "trial_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(utterances: int, work: Path) -> dict:

    root, store = work / f"places-{utterances}", work / f"store-{utterances}"
    t0 = time.time()
    build(root, utterances, default_source())
    row: dict = {"utterances": utterances, "corpus_build_s": time.time() - t0}
    t0 = time.time()
    data = prepare(data_config(root, store))
    row["store_build_s"] = time.time() - t0
    row["mfcc_mib"] = data.speech.path.stat().st_size / 2**20
    row["images_mib"] = data.images.path.stat().st_size / 2**20
    t0 = time.time()
    prepare(data_config(root, store))
    row["driver_check_s"] = time.time() - t0
    probe = subprocess.run([sys.executable, __file__, "probe", str(root), str(store)], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SystemExit(f"the trial probe at {utterances} utterances failed:\n{probe.stderr[-3000:]}")
    row.update(json.loads(probe.stdout.strip().splitlines()[-1]))
    return row


def image_path_rates(utterances: int, work: Path, seconds: float = 8.0) -> dict:
    """Images per second a batch gets at Places' sizes (256 px, 224 crop), one process: from the
    decoded store (memory-mapped pixels) and from the files (data.image_store=files), with each
    one's disk."""
    import dataclasses

    root = work / f"places-{utterances}"
    if not (root / "train_2020.json").exists():
        build(root, utterances, default_source())
    out: dict = {"utterances": utterances}
    for mode in ("decoded", "files"):
        cfg = dataclasses.replace(
            data_config(root, work / "store-images"), image_resize=256, image_crop=224, image_store=mode
        )
        data = prepare(cfg)
        split = PairSplit(data, "train")
        rng = np.random.default_rng(0)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            batch = min(64, len(split.image_names))
            split.pixels(rng.choice(len(split.image_names), batch, replace=False), 224, rng)
            n += batch
        out[f"{mode}_images_per_s"] = n / (time.perf_counter() - t)
        stored = data.images.path.stat().st_size if data.images.path.is_file() else 0
        out[f"{mode}_store_mib"] = stored / 2**20
    return out


def format_row(r: dict) -> str:
    return (
        f"{r['utterances']:>8} utt: corpus {r['corpus_build_s']:.1f} s, stores {r['store_build_s']:.1f} s "
        f"(MFCC {r['mfcc_mib']:.0f} MiB, images {r['images_mib']:.0f} MiB), driver check {r['driver_check_s']:.2f} s, "
        f"trial prepare {r['trial_first_prepare_s']:.2f} s then {r['trial_second_prepare_s']:.2f} s, "
        f"first batch at {r['trial_first_batch_s']:.2f} s, trial RSS {r['trial_rss_mib']:.0f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/simulate_places.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="a Places-layout corpus of hard links")
    b.add_argument("out", type=Path)
    b.add_argument("--utterances", type=int, required=True)
    b.add_argument("--source", type=Path, help="corpus whose recordings and images are linked (default: built-in)")
    m = sub.add_parser("bench", help="store build, driver check and a trial's data cost at each size")
    m.add_argument("--sizes", default="10000,100000", help="comma-separated utterance counts")
    m.add_argument("--work", type=Path, default=Path("places-sim"), help="folder for the corpora and stores")
    m.add_argument("--json", type=Path, help="also write the figures here")
    images = sub.add_parser("images", help="batch images/s from the decoded store and from the files")
    images.add_argument("--utterances", type=int, default=10000)
    images.add_argument("--work", type=Path, default=Path("places-sim"))
    probe = sub.add_parser("probe")  # one trial's data cost, run by bench in a fresh process
    probe.add_argument("root")
    probe.add_argument("store")
    a = p.parse_args(argv)
    if a.command == "build":
        print(build(a.out, a.utterances, a.source or default_source()))
    elif a.command == "images":
        print(json.dumps(image_path_rates(a.utterances, a.work), indent=1))
    elif a.command == "probe":
        print(json.dumps(trial_probe(a.root, a.store)))
    else:
        rows = []
        for n in (int(s) for s in a.sizes.split(",")):
            rows.append(measure(n, a.work))
            print(format_row(rows[-1]), flush=True)
        if a.json:
            a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every paper-size cell of every paper sweep, on a laptop, in minutes: each builds its real network
(the `--size paper` configuration, nothing scaled down), trains two optimizer steps on a tiny batch
of real-shaped inputs, saves and reloads its best checkpoint and evaluates a handful of items, so a
shape or configuration error at the paper's size shows here, not hours into a GPU job.

    python -m vgs.tools.paper_smoke [SWEEP ...] [--seconds 0.2] [--home DIR] [--part K/N] [--threads T]

(--part 1/2 and --part 2/2 in two processes with --threads 1 share two cores better than one
process with two threads: the batches are tiny.)

What is made small is the data, never the network: an 8-image built-in corpus (4 training
images, 2 validation, 2 test) whose recordings are cut to `--seconds` of real eSpeak NG speech
(MFCCs of the sweep's own preset), fixed image features of the paper's size (ResNet-152 2048-d,
VGG-16 4096-d; random values: only their shape matters) where the image side is features, and
pixels at the paper's crop (224x224) where it is a DenseNet.  Each cell trains one epoch of two
batches of 2 (two epochs where a warm restart or pipe-seq's ASR phase makes a second part), then
its best checkpoint is reloaded and tested.  Cells that build the same network with the same schedule run once.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vgs.config import Config, ConfigError, apply_overrides, vgs_home
from vgs.data.flickr8k import read_flickr8k
from vgs.data.image_features import FEATURE_DIMS
from vgs.data.locking import exclusive
from vgs.data.synth import generate
from vgs.log import get_logger, quiet, report_error
from vgs.search_spaces.model import trial_overrides
from vgs.sweep.dry_run import sweep_cells

log = get_logger(__name__)
IMAGES, VAL, TEST = 8, 2, 2  # 4 training images: two batches of 2; 10 captions each to validate and test
RUNS = Path("/dev/shm")  # where the runs' checkpoints go when it exists


def smoke_corpus(home: Path, seconds: float) -> Path:
    """A built-in corpus of IMAGES images in the Flickr8K layout, every recording cut to `seconds`."""
    out = home / f"paper-smoke-{IMAGES}img-{seconds:g}s"
    if (out / "dataset.json").exists():
        return out
    source = generate(
        home / f"paper-smoke-src-{IMAGES}img", images=IMAGES, seed=0, speakers=6, val_images=VAL, test_images=TEST
    )
    return trimmed_copy(source, out, seconds)


def trimmed_copy(source: Path, out: Path, seconds: float, first_caption_only: bool = False) -> Path:
    """A copy of a built-in corpus at `out` (written beside it, renamed when whole) with every
    recording cut to `seconds` (0: whole); first_caption_only keeps one spoken caption per image."""
    import soundfile as sf

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    if first_caption_only:
        listing = partial / "flickr_audio" / "wav2capt.txt"
        first = [line for line in listing.read_text().splitlines() if line.rstrip().endswith("#0")]
        listing.write_text("\n".join(first) + "\n")
    if seconds > 0:
        for wav in (partial / "flickr_audio" / "wavs").glob("*.wav"):
            audio, rate = sf.read(wav, dtype="float32")
            sf.write(wav, audio[: int(seconds * rate)], rate)
    partial.rename(out)
    return out


def feature_file(root: Path, dim: int, home: Path) -> Path:
    """Image features of size `dim` for every image of the corpus (random: their shape is what counts)."""

    path = home / f"paper-smoke-features-{dim}.npz"
    if not path.exists():
        names = sorted({str(u.image) for u in read_flickr8k(root).utterances})
        rng = np.random.default_rng(dim)
        np.savez(path, names=np.array(names), features=rng.random((len(names), dim), np.float32))
    return path


def layer_counts_capped(model: Any, cap: int = 2) -> dict[str, Any]:
    """The model config as a dict with every layer count above `cap` read as `cap`: a stack of three
    GRU layers runs the code of a stack of two, with the same shapes at every layer."""

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        counted = key.endswith("layers") or key in ("s2i", "s2t", "t2s", "t2i")
        return min(value, cap) if counted and isinstance(value, int) and not isinstance(value, bool) else value

    return walk(dataclasses.asdict(model), "")


def paper_cells(names: list[str], structures: bool = False) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(sweep, cell label, its paper-size spec, the cell's overrides) of every paper-size cell, one
    per distinct network and schedule (seeds, text fractions and data subsets build the same network).
    structures: one per distinct structure instead, layer counts above 2 read as 2 (the widths stay
    the paper's): the test suite's quicker pass over the same code and shapes."""
    from vgs.search_spaces.spec import load

    out, seen = [], set()
    for name in names:
        spec = load(name, "paper")
        cells, _ = sweep_cells(spec)
        for cell in cells:
            overrides = trial_overrides(cell, spec.seeds, spec.variants)
            cfg = spec.base_config(cell=overrides)
            key = repr(
                (
                    layer_counts_capped(cfg.model) if structures else cfg.model,
                    cfg.data.features,
                    cfg.data.speech_text,
                    cfg.train.scheduler,
                    cfg.train.restart_epochs > 0,
                    cfg.train.analysis,
                )
            )
            if key in seen:
                continue
            seen.add(key)
            label = ", ".join(f"{k}={v}" for k, v in cell.items() if k != "train.seed")
            out.append((name, label, spec, overrides))
    return out


def smoke_inputs(home: Path, seconds: float) -> Path:
    """The corpus and the feature files every cell reads (made once, before parts run in parallel)."""

    home.mkdir(parents=True, exist_ok=True)
    # two parts started at once (--part 1/2 and 2/2) would build the same corpus in one folder
    with exclusive(home / ".inputs.lock", f"the paper-smoke inputs in {home}"):
        root = smoke_corpus(home, seconds)
        for dim in sorted(set(FEATURE_DIMS.values())):
            feature_file(root, dim, home)
    return root


def small_data(spec, overrides: dict[str, Any], root: Path, home: Path, val: int = VAL, test: int = TEST) -> dict:
    """The data overrides that put a paper-size cell on a small built-in corpus: its splits, its
    stores, and image features of the paper's size where the cell's image side is features."""
    data: dict[str, Any] = {
        "data.root": str(root),
        "data.store": str(home / "store"),
        "data.speech_text_root": str(root),
        "data.builtin_val": val,
        "data.builtin_test": test,
    }
    probe = spec.base_config(data, cell=overrides)
    if probe.model.image.encoder == "features":
        dim = FEATURE_DIMS.get(probe.model.image.features_from, 2048)
        data["data.image_features"] = str(feature_file(root, dim, home))
    return data


def smoke_config(spec, overrides: dict[str, Any], data: dict[str, Any], threads: int = 2) -> Config:
    """The paper-size cell with only its data and its budget made small."""
    cfg = spec.base_config(data, cell=overrides)
    # Two optimizer steps per objective: one epoch of two batches of 2 (4 training images, one
    # caption each); two epochs where the schedule has two parts (a warm restart, pipe-seq's phases).
    # model.asr.max_chars only stops decoding sooner: an untrained decoder never ends a hypothesis.
    budget: dict[str, Any] = {
        "train.epochs": 1,
        "train.batch_size": 2,
        "train.captions_per_image": 1,
        "train.threads": threads,
        "train.test_at_end": True,
        "train.seed": 0,
        "model.asr.max_chars": 16,
    }
    if cfg.train.restart_epochs:
        budget.update({"train.epochs": 2, "train.restart_epochs": 1})  # epoch 2 restarts from epoch 1's best
    if cfg.model.family == "pipe-seq":
        budget.update({"train.epochs": 2, "model.pipeline.asr_epochs": 1})  # an ASR/SLT epoch, then a text-image one
    if cfg.train.scheduler == "calwr":
        budget["train.calwr_t0"] = 1
    if cfg.model.speech.frontend.arch:  # the paper's SSL network at random init: its shapes are what counts
        budget["model.speech.frontend.weights"] = "random"
    return apply_overrides(cfg, budget)


def check_summary(summary: dict[str, Any]) -> list[str]:
    """What is wrong with a cell's training summary: a non-finite score, no test scores."""
    problems = [
        f"{k} = {v}"
        for k, v in summary.items()
        if isinstance(v, float) and not math.isfinite(v) and not k.startswith("analysis_")
    ]
    if not any(k.startswith("test_") for k in summary):
        problems.append("no test_* scores (the reloaded best checkpoint was not evaluated)")
    return problems


def run(
    names: list[str],
    seconds: float = 0.2,
    home: Path | None = None,
    part: tuple[int, int] = (1, 1),
    threads: int = 2,
    structures: bool = False,
) -> list[dict[str, Any]]:
    """Smoke every distinct paper-size cell of the sweeps `names` (the K-th of N interleaved
    shares with part=(K, N)); one record per cell."""
    import torch

    from vgs.train import fit

    torch.serialization.set_crc32_options(False)  # GB-sized checkpoints: the checksum doubled the save time
    home = Path(home or vgs_home() / "paper-smoke")
    home.mkdir(parents=True, exist_ok=True)
    root = smoke_inputs(home, seconds)
    results = []
    k, n = part
    for name, label, spec, overrides in paper_cells(names, structures)[k - 1 :: n]:
        cfg = smoke_config(spec, overrides, small_data(spec, overrides, root, home), threads)
        started = time.time()
        record: dict[str, Any] = {"sweep": name, "cell": label, "family": cfg.model.family}
        # a paper-size run's checkpoints are up to a GB each: in memory where the machine has a
        # tmpfs, and gone after the cell
        with tempfile.TemporaryDirectory(prefix="vgs-paper-smoke-", dir=RUNS if RUNS.is_dir() else None) as out:
            try:
                with quiet():
                    summary = fit(cfg, out_dir=out)
                record["problems"] = check_summary(summary)
            except Exception as e:  # noqa: BLE001 - every cell is tried; the failure is the finding
                record["problems"] = [f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"]
        record["seconds"] = round(time.time() - started, 1)
        results.append(record)
        status = "ok" if not record["problems"] else "FAILED: " + "; ".join(record["problems"])
        log.info(f"[{len(results)}] {name} {label or '(base)'}: {status} ({record['seconds']} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    from vgs.search_spaces.spec import paper_sized

    p = argparse.ArgumentParser(prog="python -m vgs.tools.paper_smoke", description=__doc__.split("\n\n")[0])
    p.add_argument("sweeps", nargs="*", help="paper sweeps to check (default: every sweep with a paper size)")
    p.add_argument("--seconds", type=float, default=0.2, help="length the recordings are cut to")
    p.add_argument("--home", help="working folder (default: <VGS_HOME>/paper-smoke)")
    p.add_argument("--part", default="1/1", help="K/N: only the K-th of N interleaved shares of the cells")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each cell's training")
    p.add_argument(
        "--structures",
        action="store_true",
        help="one cell per distinct structure (layer counts above 2 read as 2, widths the paper's): "
        "the test suite's quicker pass",
    )
    a = p.parse_args(argv)
    try:
        known = paper_sized()
        unknown = [n for n in a.sweeps if n not in known]
        if unknown:
            raise ConfigError(f"no paper size for {', '.join(unknown)}; the sweeps with one: {', '.join(known)}")
        try:
            k, n = (int(x) for x in a.part.split("/"))
            assert 1 <= k <= n
        except (ValueError, AssertionError):
            raise ConfigError(f"--part must be K/N with 1 <= K <= N, got {a.part!r}") from None
        results = run(a.sweeps or known, a.seconds, Path(a.home) if a.home else None, (k, n), a.threads, a.structures)
    except ConfigError as e:
        return report_error(e)
    failed = [r for r in results if r["problems"]]
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed: paper-size cells of "
        f"{', '.join(dict.fromkeys(r['sweep'] for r in results))}"
    )
    for r in failed:
        print(f"  {r['sweep']} {r['cell']}: {'; '.join(r['problems'])}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Paper-size networks learn: one network per family, at the size and with the optimiser, learning
rate, schedule and batch construction its paper used, overfits a small fixed training set on a CPU.

    python -m vgs.tools.paper_overfit [FAMILY ...] [--pairs N] [--seconds 1] [--epochs 150] [--threads 2]

paper_smoke shows that every paper-size cell builds, steps and reloads; this shows that the paper's
initialisation, normalisation, loss scale and learning rate let the network fit data at all, which
otherwise would first show on a GPU bill.  The set is `--pairs` images of the built-in corpus (64;
16 for the recognizer, whose recordings are never cut) with one spoken caption each (real eSpeak
NG speech cut to `--seconds`, MFCCs of the network's own preset), the image side random features
of the paper's size (ResNet-152 2048-d, VGG-16 4096-d: one fixed vector per image, which is all a
network can memorise); every epoch scores the training set itself (train.eval_train_images) and
the run stops when it reaches the target:

    retrieval families: R@10 = 1.0 of their own queries on the training set
    asr: WER <= 0.05 on the training set (greedy decoding)

A family that does not reach its target within --epochs fails.  Each network is a paper-size cell of
the sweep that reproduces its table (FAMILIES names it); only data, epochs and evaluation change.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vgs.config import Config, ConfigError, apply_overrides, vgs_home
from vgs.data.locking import exclusive
from vgs.data.synth import generate
from vgs.log import quiet, report_error
from vgs.results.tables import markdown
from vgs.search_spaces.model import trial_overrides
from vgs.search_spaces.spec import load
from vgs.sweep.dry_run import sweep_cells
from vgs.tools.paper_smoke import RUNS, small_data, trimmed_copy

# family -> (the paper sweep and cell whose paper-size network it trains, what it must reach, pairs)
# A recognizer hears whole recordings (about 2.5 s, 125 steps into a 5 x 768 BiGRU): 16 pairs keep
# its steps affordable on 2 cores; the retrieval families take 64 (chance R@10 0.16).
FAMILIES: dict[str, tuple[str, dict[str, str], str, int]] = {
    "speech-image": ("pipeline_vs_mtl", {"variant.model": "speech-image/full"}, "r10", 64),
    "text-image": ("pipeline_vs_mtl", {"variant.model": "text-image/full"}, "r10", 64),
    "mtl-transcribe": ("pipeline_vs_mtl", {"variant.model": "mtl-asr/full"}, "r10", 64),
    "three-task": ("sharing", {"variant.row": "row06"}, "r10", 64),
    "asr": ("gru_layers_asr", {"model.asr.encoder_layers": "5"}, "wer", 16),
}
TARGET_WER = 0.05
VAL, TEST = 2, 2  # fit needs validation and test splits: two images each, never read by the check


def overfit_corpus(home: Path, pairs: int, seconds: float) -> Path:
    """A built-in corpus of `pairs` training images with one caption each (a fixed set: the same
    pairs every epoch), recordings cut to `seconds` (0: whole)."""
    out = home / f"overfit-{pairs}img-{seconds:g}s"
    with exclusive(home / ".overfit.lock", f"the overfit corpus in {home}"):
        if (out / "dataset.json").exists():
            return out
        source = generate(
            home / f"overfit-src-{pairs}img", images=pairs + VAL + TEST, seed=0, speakers=8, val_images=VAL,
            test_images=TEST,
        )  # fmt: skip
        return trimmed_copy(source, out, seconds, first_caption_only=True)


def family_config(family: str, root: Path, home: Path, pairs: int, epochs: int, threads: int) -> Config:
    """The family's paper-size network and training recipe on the overfit set."""
    sweep, picked, *_ = FAMILIES[family]
    spec = load(sweep, "paper")
    cells, _ = sweep_cells(spec)
    cell = next((c for c in cells if all(str(c.get(k)) == v for k, v in picked.items())), None)
    if cell is None:
        raise ConfigError(f"{sweep} --size paper has no cell {picked} (FAMILIES in {__name__} is stale)")
    overrides = trial_overrides(cell, spec.seeds, spec.variants)
    cfg = spec.base_config(small_data(spec, overrides, root, home, VAL, TEST), cell=overrides)
    return apply_overrides(
        cfg,
        {
            "train.epochs": epochs,  # the schedule spans the budget (a cosine anneals over it)
            "train.batch_size": min(cfg.train.batch_size, pairs),
            "train.captions_per_image": 0,
            "train.eval_train_images": pairs,
            "train.test_at_end": False,
            "train.restart_epochs": 0,
            "train.threads": threads,
            "train.seed": 0,
            "model.asr.val_beam": 1,
            "model.pipeline.asr_epochs": 0,
        },
    )


class Reached(Exception):
    """Raised from the report callback: the target is met, the run stops."""


def reached(metrics: dict[str, float], target: str) -> bool:
    if target == "wer":
        return metrics.get("trainset_wer", math.inf) <= TARGET_WER
    return metrics.get("trainset_r10", 0.0) >= 1.0


def overfit(family: str, home: Path, pairs: int, seconds: float, epochs: int, threads: int) -> dict[str, Any]:
    """Train one family until it fits its training set; a record of how far it got and how fast."""
    import torch

    from vgs.train import fit

    torch.serialization.set_crc32_options(False)
    target = FAMILIES[family][2]
    pairs = pairs or FAMILIES[family][3]
    # a recognizer must hear the whole caption it writes: its recordings are never cut
    root = overfit_corpus(home, pairs, 0 if target == "wer" else seconds)
    cfg = family_config(family, root, home, pairs, epochs, threads)
    history: list[dict[str, float]] = []

    def report(metrics: dict, _folder: Path) -> None:
        history.append(metrics)
        score = metrics.get(f"trainset_{target}")
        print(f"  {family} epoch {metrics['epoch']}: training-set {target} {score:.3f}", flush=True)
        if reached(metrics, target):
            raise Reached

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="vgs-overfit-", dir=RUNS if RUNS.is_dir() else None) as out:
        try:
            with quiet():
                fit(cfg, report=report, out_dir=out)
        except Reached:
            pass
    last = history[-1] if history else {}
    steps = sum(int(v) for m in history for k, v in m.items() if k.startswith("train_") and k.endswith("_batches"))
    return {
        "family": family,
        "pairs": pairs,
        "network": FAMILIES[family][0] + " " + " ".join(f"{k}={v}" for k, v in FAMILIES[family][1].items()),
        "params": last.get("params_trainable"),
        "target": "R@10 = 1.0" if target == "r10" else f"WER <= {TARGET_WER}",
        "reached": bool(history) and reached(last, target),
        "epochs": len(history),
        "steps": steps,
        "final": last.get(f"trainset_{target}"),
        "optimiser": f"Adam lr {cfg.train.lr:g} {cfg.train.scheduler}, batch {cfg.train.batch_size}",
        "minutes": round((time.time() - started) / 60, 1),
    }


def table(records: list[dict[str, Any]]) -> str:
    rows = [
        [
            r["family"],
            r["network"],
            str(r["pairs"]),
            f"{r['params'] / 1e6:.1f} M" if r["params"] else "-",
            r["optimiser"],
            r["target"],
            f"{r['steps']} steps ({r['epochs']} epochs)" if r["reached"] else f"not within {r['steps']} steps",
            f"{r['final']:.3f}" if r["final"] is not None else "-",
            f"{r['minutes']:.1f}",
        ]
        for r in records
    ]
    cols = [
        "family",
        "network (paper-size cell)",
        "pairs",
        "parameters",
        "optimiser",
        "target",
        "reached at",
        "last",
        "minutes",
    ]
    return markdown(cols, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.tools.paper_overfit", description=__doc__.split("\n\n")[0])
    p.add_argument("families", nargs="*", help=f"families to check (default: all): {', '.join(FAMILIES)}")
    p.add_argument(
        "--pairs", type=int, default=0, help="training images, one spoken caption each (default: 64; asr 16)"
    )
    p.add_argument(
        "--seconds", type=float, default=1.0, help="recordings cut to this length (0: whole; asr: always whole)"
    )
    p.add_argument("--epochs", type=int, default=150, help="budget: a family that needs more fails")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--home", help="working folder (default: <VGS_HOME>/paper-overfit)")
    p.add_argument("--json", help="also write the records here")
    a = p.parse_args(argv)
    unknown = [f for f in a.families if f not in FAMILIES]
    if unknown:
        return report_error(ConfigError(f"unknown family {', '.join(unknown)}; known: {', '.join(FAMILIES)}"))
    home = Path(a.home or vgs_home() / "paper-overfit")
    home.mkdir(parents=True, exist_ok=True)
    records = []
    try:
        for family in a.families or list(FAMILIES):
            print(
                f"{family}: overfitting {a.pairs or FAMILIES[family][3]} pairs, at most {a.epochs} epochs", flush=True
            )
            records.append(overfit(family, home, a.pairs, a.seconds, a.epochs, a.threads))
            r = records[-1]
            print(
                f"{family}: {'reached' if r['reached'] else 'NOT reached'} after {r['steps']} steps, {r['minutes']} min"
            )
    except ConfigError as e:
        return report_error(e)
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))
    print(table(records))
    failed = [r["family"] for r in records if not r["reached"]]
    print(
        f"{len(records) - len(failed)} of {len(records)} reached their target"
        + (f"; not: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Difficulty calibration of the built-in corpus: does a bigger model or more training help?

    python -m vgs.calibrate [--data DIR] [--workers 2] [--epochs 6,24]

Trains the default small model (cpu-small) for the given numbers of epochs and a wider one
(twice the latent size) for the longest, on the same corpus, and prints a table of validation (best epoch) and test recall.
The README's calibration table is this command's output.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time

from vgs.config import apply_overrides, base_config
from vgs.data.prepare import prepare, resolve_paths


def _run(job: tuple[str, str, dict]) -> tuple[str, dict, float]:
    from vgs.train import fit

    label, base, overrides = job
    t = time.time()
    summary = fit(apply_overrides(base_config(base), {**overrides, "train.test_at_end": True}), quiet=True)
    return label, summary, time.time() - t


def jobs(epochs: list[int], data: str | None) -> list[tuple[str, str, dict]]:
    root = {"data.root": data} if data else {}
    small = base_config("cpu-small").model
    out = [(f"DG{small.speech.layers}A{small.latent} (cpu-small), {e} epochs", "cpu-small", {**root, "train.epochs": e})
           for e in epochs]
    wide = {"model.latent": small.latent * 2}  # more capacity: twice the GRU width and latent size
    out.append((f"DG{small.speech.layers}A{wide['model.latent']}, {max(epochs)} epochs", "cpu-small",
                {**root, **wide, "train.epochs": max(epochs)}))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="corpus folder (default: the built-in corpus)")
    p.add_argument("--epochs", default="6,24", help="comma-separated epoch budgets for the small model")
    p.add_argument("--workers", type=int, default=2, help="trainings run side by side, one core each")
    a = p.parse_args(argv)
    epochs = [int(e) for e in a.epochs.split(",")]
    cfg = base_config("cpu-small")
    if a.data:
        cfg.data.root = a.data
    data = prepare(resolve_paths(cfg.data))  # once, before the workers start
    todo = jobs(epochs, a.data)
    print(f"training {len(todo)} configurations on {data.corpus.root} ({a.workers} at a time)", file=sys.stderr)
    with mp.get_context("spawn").Pool(a.workers) as pool:
        results = sorted(pool.imap_unordered(_run, todo), key=lambda r: [j[0] for j in todo].index(r[0]))
    n_val, n_test = len(data.corpus.images("val")), len(data.corpus.images("test"))
    print(f"\n| model, training | val R@10 s2i / i2s ({n_val} images) | test R@10 s2i / i2s ({n_test} images) "
          f"| test medr s2i | minutes |")
    print("|---|---|---|---|---|")
    for label, s, seconds in results:
        print(f"| {label} | {s['best_val_s2i_r10']:.3f} / {s['best_val_i2s_r10']:.3f} "
              f"| {s['test_s2i_r10']:.3f} / {s['test_i2s_r10']:.3f} | {s['test_s2i_medr']:.0f} | {seconds / 60:.1f} |")
    print(f"\nchance: val R@10 {10 / n_val:.3f}, test R@10 {10 / n_test:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

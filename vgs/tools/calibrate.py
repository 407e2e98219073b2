"""Difficulty calibration of a corpus (the built-in one by default): how far does the speech model
get, how far does the same model get from text, and do more training and more capacity help?

    python -m vgs.tools.calibrate [--data DIR] [--base cpu-small] [--epochs E] [--workers 2] [key=value ...]

Trains, on the same corpus and the same image side, side by side (one core each):
  speech-image  the base config for E epochs (the demo's starting point)
  text-image    the same, with the transcripts instead of the speech (the text "ceiling")
  speech-image  for 2E epochs (more training)
  speech-image  with twice the latent size, E epochs (more capacity)
and prints a table of validation (best epoch) and test recall, then the speech / text ratio of
validation R@10 at the same budget.  The table in docs/cpu-recipe.md, "Difficulty calibration", is
this command's output.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

from vgs.cli_options import add_base, add_data, add_overrides
from vgs.config import ConfigError, apply_overrides, base_config, parse_cli_overrides
from vgs.data.prepare import prepare, resolve_paths
from vgs.data.scenes import images_fitting
from vgs.log import get_logger, quiet, report_error
from vgs.tasks.factory import model_name

log = get_logger(__name__)


def _run(job: tuple[str, str, dict]) -> tuple[str, dict, float]:
    from vgs.train import fit

    label, base, overrides = job
    t = time.time()
    with quiet():  # several at once: their epoch lines would interleave
        summary = fit(apply_overrides(base_config(base), {**overrides, "train.test_at_end": True}))
    return label, summary, time.time() - t


def jobs(base: str, epochs: int, overrides: dict) -> list[tuple[str, str, dict]]:
    """(label, base, overrides) of the four trainings."""
    cfg = apply_overrides(base_config(base), overrides)
    name, latent = model_name(cfg.model), cfg.model.latent
    same = {**overrides, "train.epochs": epochs}
    wide = {**same, "model.latent": latent * 2}
    return [
        (f"speech-image {name} ({base}), {epochs} epochs", base, same),
        (f"text-image, same image side and budget, {epochs} epochs", base, {**same, "model.family": "text-image"}),
        (f"speech-image {name}, {2 * epochs} epochs", base, {**same, "train.epochs": 2 * epochs}),
        (f"speech-image {model_name(apply_overrides(cfg, wide).model)} (2x latent), {epochs} epochs", base, wide),
    ]


def _scores(s: dict, split: str) -> tuple[float, float]:
    """(query->image, image->query) R@10 of a summary: speech or text queries."""
    q = "t2i" if f"{split}_t2i_r10" in s else "s2i"
    return s[f"{split}_{q}_r10"], s[f"{split}_{q[::-1]}_r10"]


def table(results: list[tuple[str, dict, float]], n_val: int, n_test: int) -> str:
    lines = [
        f"| model, training | val R@10 q→i / i→q ({n_val} images) | test R@10 q→i / i→q ({n_test} images) "
        f"| test medr q→i | minutes |",
        "|---|---|---|---|---|",
    ]
    for label, s, seconds in results:
        q = "t2i" if "test_t2i_medr" in s else "s2i"
        (v1, v2), (t1, t2) = _scores(s, "sel_val"), _scores(s, "test")
        lines.append(
            f"| {label} | {v1:.3f} / {v2:.3f} | {t1:.3f} / {t2:.3f} | {s[f'test_{q}_medr']:.0f} | {seconds / 60:.1f} |"
        )
    return "\n".join(lines)


def speech_text_ratio(results: list[tuple[str, dict, float]]) -> float:
    """Validation R@10 (query -> image) of the speech model over the text model at the same budget."""
    speech, text = _scores(results[0][1], "sel_val")[0], _scores(results[1][1], "sel_val")[0]
    return speech / text if text > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.tools.calibrate", description=__doc__.split("\n\n")[0])
    add_overrides(p, "data.builtin_images=600")
    add_data(p)
    add_base(p, "cpu-small", why="the speech model's")
    p.add_argument("--epochs", type=int, help="epochs of the base budget (default: the base config's train.epochs)")
    p.add_argument("--workers", type=int, default=2, help="trainings run side by side, one core each")
    a = p.parse_intermixed_args(argv)
    try:
        overrides = parse_cli_overrides(a.overrides)
        if a.data:
            overrides["data.root"] = a.data
        cfg = apply_overrides(base_config(a.base), overrides)
        epochs = a.epochs or cfg.train.epochs
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
        data = prepare(resolve_paths(cfg.data))  # once, before the workers start
    except ConfigError as e:
        return report_error(e)
    todo = jobs(a.base, epochs, overrides)
    log.info(f"training {len(todo)} configurations on {data.corpus.root} ({a.workers} at a time)")
    t0 = time.time()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        results = []
        for r in pool.imap_unordered(_run, todo):
            results.append(r)
            log.info(f"  done: {r[0]} ({r[2] / 60:.1f} min)")
    results.sort(key=lambda r: [j[0] for j in todo].index(r[0]))
    n_val, n_test = len(data.corpus.images("val")), len(data.corpus.images("test"))
    print(f"\n{table(results, n_val, n_test)}")
    print(
        f"\nchance: val R@10 {min(1.0, 10 / n_val):.3f}, test R@10 {min(1.0, 10 / n_test):.3f}; "
        f"{(time.time() - t0) / 60:.1f} minutes in all"
    )
    print(f"speech / text ratio (val R@10 query->image, {epochs} epochs each): {speech_text_ratio(results):.2f}")
    if (Path(data.corpus.root) / "dataset.json").exists() and _has_scenes(Path(data.corpus.root)):
        fit_counts = images_fitting(data.corpus.root, "val")
        print(
            f"captions: the objects a validation caption names fit a median of {np.median(fit_counts):.0f} of the "
            f"{n_val} validation images (mean {fit_counts.mean():.1f}; {(fit_counts >= 2).mean():.0%} fit two or "
            f"more, {(fit_counts >= 10).mean():.0%} ten or more)"
        )
    return 0


def _has_scenes(root: Path) -> bool:
    """A built-in corpus records each image's scene; a real corpus does not."""
    import json

    images = json.loads((root / "dataset.json").read_text()).get("images", [])
    return bool(images) and "scene" in images[0]


if __name__ == "__main__":
    sys.exit(main())

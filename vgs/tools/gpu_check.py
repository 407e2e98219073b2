"""The GPU proof in one call: step throughput against the reference step, packing, and every family
trained for a short epoch in bf16, with its checkpoint reloaded to the same scores, and an SSL
front-end's speed (HuBERT base frozen and fine-tuned, bf16, beside MFCCs: vgs.tools.ssl_speed).

    python -m vgs.tools.gpu_check --out DIR [--home DIR] [--device auto|cuda|cpu] [--quick]

Needs torch, torchvision, torchaudio, numpy, scipy, pyarrow, pillow, pyyaml and sacrebleu, and
nothing of Ray, MLflow or Optuna (a GPU machine with only PyTorch runs it).  The corpus comes
prepared: `--home` is a VGS_HOME holding a small built-in corpus and its feature stores, made on
any machine by `bash scripts/gpu_carry.sh` (it travels with the call), so no recording is read or
synthesised here.  Writes DIR/gpu_check.json (every figure) and DIR/gpu_check.txt (a summary).

Per family (coembed, text-image, asr, slt, pipe-ind, pipe-seq, mtl-transcribe, mtl-translate,
mtl-match, three-task): one epoch of cpu-text's networks (two for pipe-seq's two phases) with
`train.amp=bf16` (float32 on a CPU), then: every loss and score finite, every validation score the
family declares present, best.pt reloaded and evaluated to the same validation scores (within
1e-4), and for coembed the bf16 run's loss and validation R@10 within a stated tolerance of a
float32 run of the same steps.  `--quick` (the CPU test): the small benchmark only, few steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vgs.checkpoint import load
from vgs.config import apply_overrides, base_config
from vgs.device import pick_device
from vgs.tools import ssl_speed

FAMILIES = (
    "coembed",
    "text-image",
    "asr",
    "slt",
    "pipe-ind",
    "pipe-seq",
    "mtl-transcribe",
    "mtl-translate",
    "mtl-match",
    "three-task",
)
CORPUS = {"data.builtin_images": 60, "data.builtin_val": 10, "data.builtin_test": 10}  # what gpu_carry.sh makes
RELOAD_TOLERANCE = 1e-4
BF16_LOSS_TOLERANCE = 0.05  # relative difference of the epoch's mean training loss, bf16 vs float32
BF16_R10_TOLERANCE = 0.1  # absolute difference of validation R@10 (10 images: one image is 0.1)


def family_config(family: str, device: str, amp: str):
    """cpu-text's networks for `family` on the carried corpus, one short epoch."""

    return apply_overrides(
        base_config("cpu-text"),
        {
            **CORPUS,
            "model.family": family,
            "train.epochs": 2 if family == "pipe-seq" else 1,
            "train.captions_per_image": 1,
            "train.amp": amp,
            "train.device": device,
            "train.test_at_end": True,
            "train.threads": max(1, (os.cpu_count() or 2) // 2),
        },
    )


def finite_problems(summary: dict[str, Any]) -> list[str]:
    return [f"{k} = {v}" for k, v in summary.items() if isinstance(v, float) and not math.isfinite(v)]


def check_family(family: str, device: str, amp: str, folder: Path) -> dict[str, Any]:
    """Train one family, then check its scores and its reloaded checkpoint."""
    from vgs.evaluate import evaluate, load_best
    from vgs.tasks import task_of
    from vgs.train import fit
    from vgs.training_data import training_data

    cfg = family_config(family, device, amp)
    started = time.time()
    summary = fit(cfg, out_dir=folder)
    seconds = time.time() - started
    problems = finite_problems(summary)
    declared = [f"val_{m}" for m in task_of(cfg.model).metric_names(cfg.model)]
    problems += [f"{k} missing" for k in declared if k not in summary]
    data = training_data(cfg)
    dev = pick_device(cfg.train.device)  # the device the run trained on
    model = load_best(folder / "best.pt", cfg, data.data.speech.dim, data.data.images.feature_dim, dev, data.vocab)
    again = evaluate(model, data.val, cfg, dev, data.vocab, beam=cfg.model.asr.val_beam).prefixed("val_")
    best = load(folder / "best.pt")["metrics"]  # the validation scores saved with the best epoch
    drift = {
        k: abs(again[k] - best[k])
        for k in best
        if k in again and isinstance(best[k], float) and math.isfinite(best[k]) and math.isfinite(again[k])
    }
    problems += [f"reloaded {k} differs by {d:.2g}" for k, d in drift.items() if d > RELOAD_TOLERANCE]
    return {
        "family": family,
        "amp": amp,
        "seconds": round(seconds, 1),
        "epochs": cfg.train.epochs,
        "train_loss": summary.get("train_loss"),
        "problems": problems,
        "scores": {k: v for k, v in summary.items() if k.startswith(("val_", "test_", "beam_val_"))},
    }


def bf16_against_fp32(device: str, folder: Path) -> dict[str, Any]:
    """coembed's same steps in float32 and in bf16: loss and R@10 within the stated tolerances."""
    from vgs.train import fit

    runs = {amp: fit(family_config("coembed", device, amp), out_dir=folder / amp) for amp in ("off", "bf16")}
    loss = abs(runs["bf16"]["train_loss"] - runs["off"]["train_loss"]) / max(abs(runs["off"]["train_loss"]), 1e-9)
    r10 = abs(runs["bf16"]["val_s2i_r10"] - runs["off"]["val_s2i_r10"])
    return {
        "train_loss": {a: r["train_loss"] for a, r in runs.items()},
        "val_s2i_r10": {a: r["val_s2i_r10"] for a, r in runs.items()},
        "loss_relative_difference": loss,
        "r10_difference": r10,
        "tolerances": {"loss_relative": BF16_LOSS_TOLERANCE, "r10": BF16_R10_TOLERANCE},
        "held": loss <= BF16_LOSS_TOLERANCE and r10 <= BF16_R10_TOLERANCE,
    }


def benchmark(device: str, quick: bool, out: Path) -> dict[str, Any]:
    """vgs bench (vgs.tools.bench) in float32 and bf16: the paper and small models beside the
    reference step, then packing 4 trials on one device."""
    from vgs.tools import bench

    figures: dict[str, Any] = {}
    configs = "small" if quick else "paper,small"
    for amp in ("off", "bf16"):
        path = out / f"bench-{amp}.json"
        args = [
            "--device",
            device,
            "--configs",
            configs,
            "--amp",
            amp,
            "--json",
            str(path),
            "--loader-images",
            "0",
            "--pack",
            "0" if quick or amp == "off" else "4",
            "--pack-seconds",
            "20",
        ]
        if quick:
            args += ["--iters", "1", "--warmup", "1"]
        bench.main(args)
        figures[amp] = json.loads(path.read_text())
    return figures


def summary_text(result: dict[str, Any]) -> str:
    lines = [
        f"vgs GPU check on {result['device']} (torch {result['torch']}, commit {result['commit']}): "
        f"{'PASSED' if result['passed'] else 'FAILED'} in {result['seconds']:.0f} s"
    ]
    for amp, figures in result.get("bench", {}).items():
        for name, row in figures.get("configs", {}).items():
            ratio = f", {row['ratio']:.2f}x the reference" if "ratio" in row else ""
            lines.append(f"bench {name} {amp}: vgs {row['vgs_joint']:.1f} samples/s{ratio}")
        if "packing" in figures:
            p = figures["packing"]
            lines.append(
                f"packing {p['trials']} small trials: {p['packed_aggregate']} vs {p['one_trial']} samples/s "
                f"= {p['speedup']}x"
            )
    if result.get("ssl"):
        lines.append(ssl_speed.format_figures(result["ssl"]))
    for f in result["families"]:
        lines.append(
            f"{f['family']:>15} {f['amp']}: {f['seconds']:6.1f} s  "
            + ("ok" if not f["problems"] else "; ".join(f["problems"]))
        )
    b = result.get("bf16_vs_fp32")
    if b:
        lines.append(
            f"bf16 vs float32 (coembed): loss {b['loss_relative_difference']:.3f} relative, R@10 "
            f"{b['r10_difference']:.3f}: {'held' if b['held'] else 'NOT held'}"
        )
    return "\n".join(lines) + "\n"


def commit() -> str:
    if os.environ.get("VGS_COMMIT"):  # scripts/gpu_check.sh: the commit gpu_carry was made at
        return os.environ["VGS_COMMIT"]
    head = Path(__file__).resolve().parents[2] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()[:12]
        return ref[:12]
    except OSError:
        return os.environ.get("VGS_COMMIT", "unknown")


def run(out: Path, device: str = "auto", quick: bool = False) -> dict[str, Any]:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    cuda = torch.cuda.is_available() and device != "cpu"
    device = "cuda" if cuda else "cpu"
    amp = "bf16" if cuda else "off"  # bf16 autocast is a GPU feature (train.amp is ignored on a CPU)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__,
        "commit": commit(),
        "families": [],
    }
    result["bench"] = benchmark(device, quick, out)
    # an SSL front-end's speed: a base model frozen (a cache build) and fine-tuned, beside MFCCs
    result["ssl"] = ssl_speed.measure("ssl_tiny" if quick else "hubert_base", device, clips=2 if quick else 8)
    print(ssl_speed.format_figures(result["ssl"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="vgs-gpu-check-") as tmp:
        for family in FAMILIES:
            try:
                result["families"].append(check_family(family, device, amp, Path(tmp) / family))
            except Exception as e:  # noqa: BLE001 - every family is tried; the failure is the finding
                result["families"].append(
                    {"family": family, "amp": amp, "seconds": 0.0, "problems": [f"{type(e).__name__}: {str(e)[:300]}"]}
                )
            print(f"{family}: {result['families'][-1]['problems'] or 'ok'}", flush=True)
        result["bf16_vs_fp32"] = bf16_against_fp32(device, Path(tmp) / "precision") if cuda else None
    result["seconds"] = time.time() - started
    result["passed"] = all(not f["problems"] for f in result["families"]) and (
        result["bf16_vs_fp32"] is None or result["bf16_vs_fp32"]["held"]
    )
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "gpu_check.txt").write_text(summary_text(result))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.tools.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.txt")
    p.add_argument("--home", help="the carried VGS_HOME (scripts/gpu_carry.sh; default: $VGS_HOME)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="the small benchmark only, a step or two (the CPU test)")
    a = p.parse_args(argv)
    if a.home:
        os.environ["VGS_HOME"] = str(Path(a.home).resolve())
    result = run(Path(a.out), a.device, a.quick)
    print(summary_text(result), end="")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

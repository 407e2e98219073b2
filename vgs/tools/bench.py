"""Training-step throughput: the reference step of ../shared/bench/reference_step.py and vgs's own
step, same model, same run, plus data-loader throughput, GPU utilisation and trial packing.

    python -m vgs.tools.bench [--device auto] [--configs paper,small] [--amp bf16] [--pack 4] [--json FILE]

paper: DG3A1024 + DenseNet-264 at 224x224, batch 64 (Mortazavi 2020).  small: DG2A128 (64 conv channels,
stride 3, as the reference's front end) + a 2-2-2-2 DenseNet at 32x32, batch 16 (the packing case).
The reference pads every utterance to a fixed 800 frames; vgs's step sees a Places-like length
distribution (log-normal, median 650
frames, 100..2048, mean about 800) in length-sorted batches, packed through the GRUs.  Figures
are samples/s; the `ratio` is vgs / reference on the same device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vgs.config import Config, base_config
from vgs.data.batching import PairSplit, length_sorted_batches
from vgs.data.prepare import prepare, resolve_paths
from vgs.device import pick_device, training_precision, tune_for_device
from vgs.log import quiet
from vgs.losses import Loss
from vgs.tasks.factory import build_model
from vgs.tools import bench_overhead as overhead

# the workplace's shared folder beside the checkout, or $VGS_SHARED
REFERENCE = (
    Path(os.environ.get("VGS_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "bench" / "reference_step.py"
)
MFCC = 40  # the mortazavi preset, as the reference's conv1d(40 -> 64)
REFERENCE_FRAMES = 800


BENCH_CONFIGS = ("paper", "small")


def bench_config(name: str) -> tuple[Config, int]:
    """(config, batch size) of a named benchmark model."""
    if name == "paper":
        return base_config("paper"), 64
    if name == "small":  # fixed here, so its figures stay comparable as the CPU recipe changes
        cfg = base_config("cpu-tiny")
        cfg.model.speech.layers = 2
        return cfg, 16
    raise ValueError(f"unknown bench config '{name}'; known: {', '.join(BENCH_CONFIGS)}")


def places_like_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Frame counts like spoken Places captions at 12.5 ms hops: median 650, mean about 800."""
    return np.clip(rng.lognormal(np.log(650), 0.55, n), 100, 2048).astype(np.int64)


def load_reference(path: Path):
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("reference_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(step, device: torch.device, iters: int, warmup: int) -> float:
    """Seconds per call of step() (after warmup calls)."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def reference_joint_rate(ref, cfg: Config, batch: int, device: torch.device, iters: int, warmup: int) -> float:
    """The reference's own encoders (its speech encoder; torchvision DenseNet of the config's shape)
    trained together with its hinge loss on fixed-length batches: samples/s."""
    import torchvision

    from vgs.models.image import parse_blocks

    speech = ref.ReferenceSpeechEncoder(
        cfg.model.speech.layers, cfg.model.latent, MFCC, stride=cfg.model.speech.conv_stride
    ).to(device)
    image = torchvision.models.DenseNet(
        cfg.model.image.growth_rate,
        parse_blocks(cfg.model.image.blocks),
        cfg.model.image.init_features,
        num_classes=cfg.model.latent,
    ).to(device)
    opt = torch.optim.Adam([*speech.parameters(), *image.parameters()], 1e-4)
    x = torch.randn(batch, MFCC, REFERENCE_FRAMES, device=device)
    pixels = torch.randn(batch, 3, cfg.data.image_crop, cfg.data.image_crop, device=device)

    def step():
        loss = ref.hinge_all_negatives(speech(x), F.normalize(image(pixels), dim=-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch / _timed(step, device, iters, warmup)


def synthetic_batches(cfg: Config, batch: int, count: int, device: torch.device, seed: int = 0) -> list[dict]:
    """`count` length-sorted batches (as the training loader cuts them) of random features."""
    rng = np.random.default_rng(seed)
    lengths = places_like_lengths(batch * count, rng)
    out = []
    for idx in length_sorted_batches(rng.permutation(len(lengths)), lengths, batch)[:count]:
        frames = torch.from_numpy(lengths[idx])
        out.append(
            {
                "speech": torch.randn(len(idx), int(frames.max()), MFCC, device=device),
                "lengths": frames.to(device),
                "image_ids": torch.arange(len(idx), device=device),
                "pixels": torch.randn(len(idx), 3, cfg.data.image_crop, cfg.data.image_crop, device=device),
            }
        )
    return out


def vgs_step(cfg: Config, batch: int, device: torch.device, amp: str):
    """(step function, samples per call): vgs's training step as train.fit runs it on a GPU."""
    model = build_model(cfg.model, MFCC).to(device)
    tune_for_device(model, device)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    batches = synthetic_batches(cfg, batch, 16, device)
    precision = training_precision(amp, device)
    state = {"k": 0}

    def step():
        b = batches[state["k"] % len(batches)]
        state["k"] += 1
        with precision:
            loss = sum(model.objective(b, "s2i", Loss(margin=0.2)).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, float(np.mean([len(b["lengths"]) for b in batches]))


def gpu_utilisation(step, seconds: float = 3.0) -> float | None:
    """Mean GPU utilisation (%) reported by NVML while `step` runs; None without NVML."""
    try:
        torch.cuda.utilization()
    except Exception:
        return None
    samples, end = [], time.time() + seconds
    while time.time() < end:
        step()
        samples.append(torch.cuda.utilization())
    return float(np.mean(samples))


def loader_rate(cfg: Config, images: int, seconds: float = 10.0) -> dict:
    """Training batches per second assembled from a prepared built-in corpus (memory-mapped
    speech store, decoded images, random crops), on this machine's CPU, one process."""

    cfg.data.builtin_images = images
    with quiet():
        data = prepare(resolve_paths(cfg.data))
    split = PairSplit(data, "train")
    rng = np.random.default_rng(0)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for idx in split.epoch_batches(rng, cfg.train.batch_size):
            b = split.batch(idx, cfg.data.image_crop, rng)
            n += len(b["lengths"])
            if time.perf_counter() - t > seconds:
                break
    elapsed = time.perf_counter() - t
    return {"samples_per_s": round(n / elapsed, 1), "images": images, "crop": cfg.data.image_crop}


def _packed_worker(name: str, device: str, amp: str, seconds: float, threads: int, barrier, queue) -> None:
    torch.set_num_threads(threads)
    cfg, batch = bench_config(name)
    step, per_call = vgs_step(cfg, batch, torch.device(device), amp)
    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    barrier.wait()  # all trials start timing together
    calls, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        step()
        calls += 1
    if device == "cuda":
        torch.cuda.synchronize()
    queue.put(calls * per_call / (time.perf_counter() - t))


def packed_rate(name: str, trials: int, device: torch.device, amp: str, seconds: float, threads: int) -> float:
    """Aggregate samples/s of `trials` processes training `name` at once on one device (the
    fractional-GPU packing of a sweep: `--resources gpu=0.25`), plain processes instead of Ray."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(trials), ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_packed_worker, args=(name, device.type, amp, seconds, threads, barrier, queue))
        for _ in range(trials)
    ]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vgs.tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cuda, cpu or auto")
    p.add_argument(
        "--configs",
        default=None,
        help="comma-separated: paper, small (default: both on a GPU, "
        "small on a CPU, where the paper model takes minutes per step)",
    )
    p.add_argument("--amp", default="bf16", choices=["bf16", "off"], help="vgs step precision on a GPU")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--pack", type=int, default=4, help="trials packed on one device for the packing figure (0: skip)")
    p.add_argument("--pack-seconds", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process on a CPU")
    p.add_argument(
        "--loader-images", type=int, default=300, help="built-in corpus size for the loader figure (0: skip)"
    )
    p.add_argument("--reference", default=str(REFERENCE), help="path of reference_step.py")
    p.add_argument(
        "--overhead",
        action="store_true",
        help="instead: a sweep's per-trial cost beyond training, beside bare Ray Tune (vgs.tools.bench_overhead)",
    )
    p.add_argument("--trials", type=int, default=24, help="--overhead: trials of each sweep")
    p.add_argument("--concurrent", type=int, default=2, help="--overhead: trials at a time")
    p.add_argument("--json", help="also write the figures to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    unknown = [n for n in (a.configs or "").split(",") if n and n not in BENCH_CONFIGS]
    if unknown:  # before the device is set up and the reference loaded
        p.error(f"--configs: unknown {', '.join(unknown)}; known: {', '.join(BENCH_CONFIGS)}")
    if a.overhead:
        out = overhead.measure(a.trials, a.concurrent)
        print(overhead.format_figures(out), flush=True)
    else:
        out = throughput(a)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


def throughput(a: argparse.Namespace) -> dict:
    """Training-step, packing and loader figures."""
    device = pick_device(a.device)
    if device.type == "cpu":
        torch.set_num_threads(a.threads)
    names = (a.configs or ("paper,small" if device.type == "cuda" else "small")).split(",")
    name_of_device = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    out: dict = {
        "device": name_of_device,
        "torch": torch.__version__,
        "amp": a.amp if device.type == "cuda" else "off",
        "configs": {},
    }
    print(f"device: {name_of_device}; vgs step precision: {out['amp']}", flush=True)
    ref = load_reference(Path(a.reference))
    if ref is None:
        print(f"reference step not found at {a.reference}: vgs figures only (pass --reference PATH)", flush=True)
    for name in names:
        out["configs"][name] = step_figures(name, ref, device, out["amp"], a.iters, a.warmup)
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in out["configs"][name].items()), flush=True)
    if a.pack > 1:
        out["packing"] = packing_figures(device, a)
    if a.loader_images:
        for name in names:
            cfg, _ = bench_config(name)
            out.setdefault("loader", {})[name] = loader_rate(cfg, a.loader_images)
            print(f"loader {name}: {out['loader'][name]}", flush=True)
    return out


def step_figures(name: str, ref, device: torch.device, amp: str, iters: int, warmup: int) -> dict:
    """samples/s of the reference's step and of vgs's, same model, same device."""
    cfg, batch = bench_config(name)
    row: dict = {"batch": batch}
    if ref is not None:
        row["reference_joint"] = reference_joint_rate(ref, cfg, batch, device, iters, warmup)
        if name == "paper":  # the reference's own per-encoder figures (DESIGN.md anchors)
            row["reference_speech"] = ref.speech_samples_per_s(
                3, 1024, REFERENCE_FRAMES, batch, device.type, iters, warmup
            )
            row["reference_image"] = ref.image_samples_per_s(1024, 224, batch, device.type, iters, warmup)
    step, per_call = vgs_step(cfg, batch, device, amp)
    try:
        step()
    except RuntimeError as e:  # e.g. a cuDNN without bf16 GRUs: say so and measure float32
        print(f"{name}: vgs step in {amp} failed ({str(e).splitlines()[0][:200]}); measuring float32", flush=True)
        amp = row["amp"] = "off"
        step, per_call = vgs_step(cfg, batch, device, amp)
    row["vgs_joint"] = per_call / _timed(step, device, iters, warmup)
    if device.type == "cuda":
        row["gpu_utilisation_pct"] = gpu_utilisation(step)
    if "reference_joint" in row:
        row["ratio"] = row["vgs_joint"] / row["reference_joint"]
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}


def packing_figures(device: torch.device, a: argparse.Namespace) -> dict:
    one = packed_rate("small", 1, device, a.amp, a.pack_seconds, a.threads)
    many = packed_rate("small", a.pack, device, a.amp, a.pack_seconds, a.threads)
    print(
        f"packing small: 1 trial {one:.1f} samples/s; {a.pack} trials at once {many:.1f} samples/s in all "
        f"= {many / one:.2f}x",
        flush=True,
    )
    return {
        "trials": a.pack,
        "one_trial": round(one, 1),
        "packed_aggregate": round(many, 1),
        "speedup": round(many / one, 2),
    }


if __name__ == "__main__":
    sys.exit(main())

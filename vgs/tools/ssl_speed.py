"""How fast a self-supervised front-end encodes speech, beside MFCCs, on this machine.

    python -m vgs.tools.ssl_speed [--arch hubert_base] [--device auto] [--threads 2] [--clips 4]
                                  [--seconds 3] [--json FILE] [--trial [--images 100]]

Times, in milliseconds per second of audio: MFCCs (the mortazavi preset, one clip at a time, as a
store is built); the upstream frozen (all hidden states, no gradient: what a cache build does), in
float32 and, on a GPU, bf16 autocast; and a fine-tuning step (forward and backward through the
transformer, the CNN frozen).  The upstream is built at random init: its speed is its shapes'.  The
GPU check (vgs.tools.gpu_check) runs it on the GPU it is lent.

--trial also times what the cache saves: one epoch of a frozen front-end's trial (cpu-tiny's recipe
on a built-in corpus of --images images) reading the cached states, then the same epoch recomputing
them from the waveforms every step (model.speech.frontend.cache=false), in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from vgs.config import FrontEndConfig, apply_overrides, base_config
from vgs.data.featurisers import SAMPLE_RATE, mfcc
from vgs.data.prepare import prepare
from vgs.models.ssl import UPSTREAMS, featuriser_for, hidden_states, load_upstream
from vgs.train import fit


def _per_second(fn, audio_seconds: float, repeats: int) -> float:
    """Milliseconds per second of audio of fn(), its first call left out (warm-up)."""
    import torch

    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / repeats / audio_seconds


def measure(
    arch: str = "hubert_base", device: str = "auto", clips: int = 4, seconds: float = 3.0, repeats: int = 2
) -> dict[str, Any]:
    import torch

    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    up = UPSTREAMS[arch]
    fe = FrontEndConfig(arch=arch, weights="random", train="finetune")
    model = load_upstream(fe, seed=0).to(dev)
    for p in model.feature_extractor.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    wav = torch.randn(clips, int(seconds * SAMPLE_RATE)) * 0.1
    audio = clips * seconds
    out: dict[str, Any] = {
        "arch": arch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.machine()})",
        "threads": torch.get_num_threads(),
        "clips": clips,
        "clip_seconds": seconds,
    }
    out["mfcc_ms_per_s"] = _per_second(lambda: [mfcc(w, "mortazavi") for w in wav], audio, repeats)
    x = wav.to(dev)

    def frozen(precision) -> None:
        with torch.no_grad(), precision:
            hidden_states(model.eval(), x, None, up.normalize)

    out["frozen_fp32_ms_per_s"] = _per_second(lambda: frozen(contextlib.nullcontext()), audio, repeats)
    if dev.type == "cuda":
        bf16 = torch.autocast("cuda", dtype=torch.bfloat16)
        out["frozen_bf16_ms_per_s"] = _per_second(lambda: frozen(bf16), audio, repeats)

    def step() -> None:
        model.train()
        precision = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
        with precision:
            states, _ = hidden_states(model, x, None, up.normalize)
        states[-1].float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)

    key = "finetune_bf16_ms_per_s" if dev.type == "cuda" else "finetune_fp32_ms_per_s"
    out[key] = _per_second(step, audio, repeats)
    return out


def epoch_times(arch: str, images: int, out_dir: Path) -> dict[str, Any]:
    """One epoch of a frozen front-end's trial, from the cache and on the fly (epoch_seconds: training and
    validation), after the cache is built (timed, and its size per hour of speech)."""
    import torch

    out: dict[str, Any] = {"trial_images": images}
    for name, cache in (("cached", True), ("on_the_fly", False)):
        cfg = apply_overrides(
            base_config("cpu-tiny"),
            {
                "data.builtin_images": images,
                "model.speech.frontend.arch": arch,
                "model.speech.frontend.weights": "random",
                "model.speech.frontend.cache": cache,
                "train.epochs": 1,
                "train.threads": torch.get_num_threads(),
            },
        )
        if cache:
            prepare(cfg.data)  # the corpus and its image store first: the build timed next is the cache's alone
            start = time.perf_counter()
            store = prepare(cfg.data, speech=featuriser_for(cfg)).speech
            out["cache_build_s"] = time.perf_counter() - start
            hours = float(store.lengths.sum()) * store.hop / SAMPLE_RATE / 3600
            out["cache_gb_per_hour"] = store.path.stat().st_size / 1e9 / hours
            out["speech_hours"] = hours
        out[f"{name}_epoch_s"] = fit(cfg, out_dir=out_dir / name)["epoch_seconds"]
    out["cache_saving"] = out["on_the_fly_epoch_s"] / out["cached_epoch_s"]
    return out


def format_figures(f: dict[str, Any]) -> str:
    rows = [
        f"{k.removesuffix('_ms_per_s')}: {v:.1f} ms per s of audio" for k, v in f.items() if k.endswith("_ms_per_s")
    ]
    head = (
        f"{f['arch']} ({f['parameters'] / 1e6:.1f} M parameters) on {f['device']}, {f['threads']} thread(s), "
        f"{f['clips']} clips of {f['clip_seconds']:g} s:"
    )
    if "cache_saving" in f:
        rows.append(
            f"cache of every state read: built in {f['cache_build_s']:.0f} s for {f['speech_hours'] * 60:.1f} min "
            f"of speech, {f['cache_gb_per_hour']:.2f} GB per hour of speech (fp16)"
        )
        rows.append(
            f"one epoch of a frozen trial ({f['trial_images']} images): {f['cached_epoch_s']:.1f} s from the cache, "
            f"{f['on_the_fly_epoch_s']:.1f} s recomputing the states: {f['cache_saving']:.1f}x"
        )
    return "\n".join([head, *(f"  {r}" for r in rows)])


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m vgs.tools.ssl_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="hubert_base", choices=sorted(UPSTREAMS))
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads on a CPU")
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--trial", action="store_true", help="also time one epoch of a frozen trial, cached and not")
    p.add_argument("--images", type=int, default=100, help="--trial: images of the built-in corpus")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    figures = measure(a.arch, a.device, a.clips, a.seconds, a.repeats)
    if a.trial:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="vgs-ssl-speed-") as tmp:
            figures.update(epoch_times(a.arch, a.images, Path(tmp)))
    print(format_figures(figures))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

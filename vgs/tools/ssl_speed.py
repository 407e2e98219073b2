"""How fast a self-supervised front-end encodes speech, beside MFCCs, on this machine.

    python -m vgs.tools.ssl_speed [--arch hubert_base] [--device auto] [--threads 2] [--clips 4]
                                  [--seconds 3] [--json FILE]

Times, in milliseconds per second of audio: MFCCs (the mortazavi preset, one clip at a time, as a
store is built); the upstream frozen (all hidden states, no gradient: what a cache build does), in
float32 and, on a GPU, bf16 autocast; and a fine-tuning step (forward and backward through the
transformer, the CNN frozen).  The upstream is built at random init: its speed is its shapes'.  The
GPU check (vgs.tools.gpu_check) runs it on the GPU it is lent.
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

from vgs.config import FrontEndConfig
from vgs.data.featurisers import SAMPLE_RATE, mfcc
from vgs.models.ssl import UPSTREAMS, hidden_states, load_upstream


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


def format_figures(f: dict[str, Any]) -> str:
    rows = [
        f"{k.removesuffix('_ms_per_s')}: {v:.1f} ms per s of audio" for k, v in f.items() if k.endswith("_ms_per_s")
    ]
    head = (
        f"{f['arch']} ({f['parameters'] / 1e6:.1f} M parameters) on {f['device']}, {f['threads']} thread(s), "
        f"{f['clips']} clips of {f['clip_seconds']:g} s:"
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
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    figures = measure(a.arch, a.device, a.clips, a.seconds, a.repeats)
    print(format_figures(figures))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

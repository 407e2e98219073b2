"""A small SSL-shaped front-end with weights, for CPU work: ssl_tiny taught to predict a corpus's MFCCs.

    python -m vgs.tools.distil_ssl --out ssl_tiny.pt [--data ROOT] [--epochs 4] [--recordings N] [--threads 2]

A random-init upstream carries little about speech (docs/model-families.md, "Front-ends"), so on a CPU
a frozen ssl_tiny tells nothing about the cache-and-read-out path it exercises.  This trains all of
ssl_tiny (CNN included) for a few epochs on the corpus's training recordings to predict, through a
linear map of its last state, each 20-ms frame's standardised MFCCs (the mortazavi preset's frame
nearest its centre): a stand-in for pretraining that takes a minute, not a pretrained model.  The
state dict saved is the upstream's alone (the linear map is dropped), loaded like any checkpoint with
`model.speech.frontend.weights=FILE`.  Default corpus: the built-in one (data.builtin_*).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from vgs.cli_options import add_data
from vgs.config import ConfigError, DataConfig, FrontEndConfig, apply_overrides, base_config
from vgs.data.corpora import read_corpus
from vgs.data.featurisers import PRESETS, load_audio, mfcc
from vgs.data.prepare import ensure_builtin, resolve_paths
from vgs.data.records import CorpusError
from vgs.log import get_logger, report_error
from vgs.models.ssl import FRAME_HOP, MIN_SAMPLES, hidden_states, load_upstream

log = get_logger(__name__)
PRESET = "mortazavi"


def targets(wav, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The standardised MFCC frame nearest each SSL frame's centre: (frames, 40)."""
    feats = (mfcc(wav, PRESET) - mean) / std
    hop = PRESETS[PRESET]["hop"]
    frames = (len(wav) - MIN_SAMPLES) // FRAME_HOP + 1
    centres = (np.arange(frames) * FRAME_HOP + MIN_SAMPLES // 2) // hop
    return feats[np.minimum(centres, len(feats) - 1)].astype(np.float32)


def distil(
    root: Path, out: Path, epochs: int = 4, batch: int = 16, lr: float = 2e-3, seed: int = 0, recordings: int = 0
) -> dict:
    """recordings: the first N training recordings only (0: all of them)."""
    import torch

    corpus = read_corpus(root)
    train = corpus.split("train")
    waves = [load_audio(u.audio) for u in (train[:recordings] if recordings else train)]
    sample = np.concatenate([mfcc(w, PRESET) for w in waves[:200]])
    mean, std = sample.mean(0), sample.std(0) + 1e-5
    pairs = [(w, torch.from_numpy(targets(w, mean, std))) for w in waves if len(w) >= MIN_SAMPLES]
    torch.manual_seed(seed)
    fe = FrontEndConfig(arch="ssl_tiny", weights="random", train="full")
    model = load_upstream(fe)
    head = torch.nn.Linear(64, pairs[0][1].shape[1])
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=lr)
    rng = np.random.default_rng(seed)
    order = np.argsort([len(w) for w, _ in pairs])
    started, losses = time.time(), []
    for epoch in range(1, epochs + 1):
        batches = [order[a : a + batch] for a in range(0, len(order), batch)]
        epoch_loss = []
        for b in rng.permutation(len(batches)):
            idx = batches[b]
            lengths = torch.tensor([len(pairs[i][0]) for i in idx])
            x = torch.zeros(len(idx), int(lengths.max()))
            for k, i in enumerate(idx):
                x[k, : lengths[k]] = pairs[i][0]
            states, out_len = hidden_states(model, x, lengths, normalize=False)
            pred = head(states[-1])
            loss = torch.zeros(())
            for k, i in enumerate(idx):
                n = min(int(out_len[k]), len(pairs[i][1]))
                loss = loss + torch.nn.functional.mse_loss(pred[k, :n], pairs[i][1][:n])
            loss = loss / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            epoch_loss.append(loss.item())
        losses.append(float(np.mean(epoch_loss)))
        log.info(f"distil ssl_tiny: epoch {epoch}/{epochs} MFCC prediction MSE {losses[-1]:.3f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(out)
    return {"out": str(out), "recordings": len(pairs), "mse_per_epoch": losses, "seconds": time.time() - started}


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m vgs.tools.distil_ssl", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the state dict to write (.pt)")
    add_data(p)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--recordings", type=int, default=0, help="the first N training recordings (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="data.builtin_* of the built-in corpus, e.g. data.builtin_images=300")
    a = p.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    try:
        data = apply_overrides(base_config("cpu-tiny"), dict(o.split("=", 1) for o in a.overrides)).data
        root = Path(a.data) if a.data else ensure_builtin(resolve_paths(data if a.overrides else DataConfig()))
        result = distil(root, Path(a.out), a.epochs, recordings=a.recordings)
    except (ConfigError, CorpusError, ValueError) as e:
        return report_error(e)
    print(
        f"ssl_tiny distilled from {result['recordings']} recordings in {result['seconds']:.0f} s (MSE per epoch "
        f"{', '.join(f'{x:.3f}' for x in result['mse_per_epoch'])}): {result['out']}\n"
        f"use it: model.speech.frontend.arch=ssl_tiny model.speech.frontend.weights={result['out']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

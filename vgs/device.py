"""The one place that picks a device and sets the training step up for it (training, vgs.bench,
image-feature extraction and vgs.results.retrieve all go through here)."""

from __future__ import annotations

import contextlib

import torch

from vgs.config import Config, ConfigError


def pick_device(name: str) -> torch.device:
    """'auto' (a GPU when one is visible), 'cpu', 'cuda' or 'cuda:N'; 'cuda' without a GPU is an error."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for, but no GPU is visible")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())  # a worker's own GPU (set by Ray Train)
    if name == "auto":
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from e


def training_precision(amp: str, device: torch.device):
    """Context for the training step's forward pass: bf16 autocast on a GPU when asked (the value
    is checked with the config: check_consistent)."""
    if amp == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tune_for_device(model: torch.nn.Module, device: torch.device) -> None:
    """GPU settings of the training step (train.fit and vgs.bench): no-op on CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # conv algorithms tuned per shape (length-bucketed batches repeat)
        model.to(memory_format=torch.channels_last)  # DenseNet's convolutions run faster NHWC on tensor cores


class TrialOutOfMemory(RuntimeError):
    """The configuration does not fit in the device's memory; the message says which knobs to turn."""


def out_of_memory(error: RuntimeError, cfg: Config, name: str) -> TrialOutOfMemory | None:
    """A training run's RuntimeError as TrialOutOfMemory naming the configuration and what to lower
    when the device ran out of memory; None for any other error."""
    text = str(error)
    if isinstance(error, torch.OutOfMemoryError):
        where = "GPU"
    elif "can't allocate memory" in text or "not enough memory" in text:
        where = "CPU"
    else:
        return None
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # trials packed on the same GPU get the memory back at once
    m = cfg.model
    return TrialOutOfMemory(
        f"out of {where} memory: {name} (model.latent={m.latent}, model.speech.layers={m.speech.layers}) with "
        f"train.batch_size={cfg.train.batch_size} on {cfg.train.device}: {text.splitlines()[0][:300]}. Lower "
        f"train.batch_size or the model size, set train.amp=bf16, cap data.max_frames, or give each trial more of "
        f"the device (--resources gpu=1)"
    )

"""Audio in, features out: reading recordings at 16 kHz, the MFCC and FBANK presets, and the
featurisers a speech store is built with (vgs.data.features): a preset's MFCCs, the 16 kHz waveform
itself (for a front-end that trains on audio), or, passed in from vgs.models.ssl, a frozen
self-supervised model's hidden states.  A featuriser turns one waveform into (frames, dim) values
and names what keys its store (its params)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vgs.data.records import CorpusError

SAMPLE_RATE = 16000

# ------------------------------------------------------------------ MFCC presets

PRESETS = {
    # Mortazavi 2020 §5.1: torchaudio's MFCC defaults with 40 coefficients (n_fft 400, hop 200 = 12.5 ms)
    "mortazavi": {"n_mfcc": 40, "n_fft": 400, "hop": 200, "n_mels": 128, "energy_deltas": False},
    # Higy et al. 2020: 12 MFCC + log energy, deltas and delta-deltas (39), 25 ms window, 10 ms shift
    "chrupala": {"n_mfcc": 13, "n_fft": 400, "hop": 160, "n_mels": 40, "energy_deltas": True},
    # Chrupała 2019 §4: the same 12 MFCC + log energy without deltas (13)
    "chrupala13": {"n_mfcc": 13, "n_fft": 400, "hop": 160, "n_mels": 40, "energy_deltas": True, "deltas": False},
    # 40 log mel filterbank energies (FBANK), 25 ms windows every 10 ms
    "fbank": {"n_mfcc": 0, "n_fft": 400, "hop": 160, "n_mels": 40, "energy_deltas": False},
}


def preset_dim(name: str) -> int:
    p = check_preset(name)
    if not p["n_mfcc"]:
        return p["n_mels"]
    if not p["energy_deltas"]:
        return p["n_mfcc"]
    return 39 if p.get("deltas", True) else 13


def check_preset(name: str) -> dict:
    if name not in PRESETS:
        raise CorpusError(f"unknown feature preset '{name}'; known: {', '.join(PRESETS)}")
    return PRESETS[name]


_TRANSFORMS: dict = {}


def check_recording_length(path: str, samples: int, preset: str, max_frames: int) -> str | None:
    """A query recording's length against its preset: shorter than one analysis window is refused
    (the MFCC would fail inside torch), longer than training's data.max_frames returns a note
    (embedded whole, though no training utterance was that long)."""
    p = check_preset(preset)
    if samples < p["n_fft"]:
        raise CorpusError(
            f"{path}: {samples} samples at {SAMPLE_RATE} Hz is shorter than one analysis window of the "
            f"'{preset}' features ({p['n_fft']} samples, {1000 * p['n_fft'] / SAMPLE_RATE:g} ms)"
        )
    frames = samples // p["hop"] + 1
    if frames > max_frames:
        return (
            f"{path}: {samples / SAMPLE_RATE:.1f} s is {frames} frames, {frames / max_frames:.1f}x data.max_frames "
            f"({max_frames}) that training kept; it is embedded whole"
        )
    return None


def mfcc(waveform, preset: str) -> np.ndarray:
    """16 kHz mono float waveform (1-D tensor) -> (frames, dims) float32."""
    import torch
    import torchaudio.functional as AF
    import torchaudio.transforms as T

    p = check_preset(preset)
    if not p["n_mfcc"]:
        return log_mel(waveform, preset)
    if preset not in _TRANSFORMS:
        # torchaudio's default 128 mel bands over a 400-point FFT leave some bands empty and it
        # warns; these are the paper's settings, so the warning is expected and silenced.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _TRANSFORMS[preset] = T.MFCC(
                sample_rate=SAMPLE_RATE,
                n_mfcc=p["n_mfcc"],
                melkwargs={"n_fft": p["n_fft"], "hop_length": p["hop"], "n_mels": p["n_mels"]},
            )
    with torch.no_grad():
        feats = _TRANSFORMS[preset](waveform)  # (n_mfcc, frames)
        if p["energy_deltas"]:
            frames = feats.shape[1]
            padded = torch.nn.functional.pad(waveform[None], (p["n_fft"] // 2, p["n_fft"] // 2), mode="reflect")[0]
            windows = padded.unfold(0, p["n_fft"], p["hop"])[:frames]
            log_energy = torch.log((windows**2).sum(1) + 1e-10)
            static = torch.cat([feats[1:], log_energy[None]], 0)  # c1..c12 + log energy
            if p.get("deltas", True):
                d1 = AF.compute_deltas(static[None])[0]
                d2 = AF.compute_deltas(d1[None])[0]
                feats = torch.cat([static, d1, d2], 0)
            else:
                feats = static
    return feats.T.contiguous().numpy().astype(np.float32)


def log_mel(waveform, preset: str) -> np.ndarray:
    """FBANK: log mel filterbank energies, (frames, n_mels) float32."""
    import torch
    import torchaudio.transforms as T

    p = PRESETS[preset]
    if preset not in _TRANSFORMS:
        _TRANSFORMS[preset] = T.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=p["n_fft"], hop_length=p["hop"], n_mels=p["n_mels"]
        )
    with torch.no_grad():
        feats = torch.log(_TRANSFORMS[preset](waveform) + 1e-6)
    return feats.T.contiguous().numpy().astype(np.float32)


def load_audio(path: str):
    """Read an audio file as a 16 kHz mono float tensor; a clear error names an unreadable file."""
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for missing/corrupt files
        raise CorpusError(f"corrupt or unreadable audio file {path}: {e}") from e
    if data.shape[0] == 0:
        raise CorpusError(f"empty audio file {path}")
    wav = torch.from_numpy(data.mean(1))
    if rate != SAMPLE_RATE:
        wav = AF.resample(wav, rate, SAMPLE_RATE)
    return wav


class Featuriser(Protocol):
    """What a speech store holds per recording, and how to compute it."""

    name: str  # in the store's file name
    dim: int  # values per frame
    hop: int  # samples per frame (size estimates)
    dtype: str  # float32 | float16
    standardise: bool  # the store's statistics standardise its frames (MFCCs) or not
    workers: int | None  # processes to compute in (None: one per CPU; 1: this process, e.g. a model on a GPU)

    def params(self) -> dict[str, Any]: ...  # what keys the store besides its sources

    def min_samples(self) -> int: ...  # a shorter recording gives no frame

    def __call__(self, waveform) -> np.ndarray: ...  # 16 kHz mono float tensor -> (frames, dim)


@dataclass(frozen=True)
class Mfcc:
    """A preset's MFCC (or FBANK) frames, float32, standardised by the store's training statistics."""

    preset: str

    @property
    def name(self) -> str:
        return self.preset

    @property
    def dim(self) -> int:
        return preset_dim(self.preset)

    @property
    def hop(self) -> int:
        return check_preset(self.preset)["hop"]

    dtype = "float32"
    standardise = True
    workers = None

    def params(self) -> dict[str, Any]:
        return {"preset": self.preset, **check_preset(self.preset)}

    def min_samples(self) -> int:
        return check_preset(self.preset)["n_fft"]

    def __call__(self, waveform) -> np.ndarray:
        return mfcc(waveform, self.preset)


@dataclass(frozen=True)
class Waveform:
    """The 16 kHz waveform itself, one sample a frame, fp16 (for a front-end that trains on audio)."""

    name = "wave16k"
    dim = 1
    hop = 1
    dtype = "float16"
    standardise = False
    workers = None

    def params(self) -> dict[str, Any]:
        return {"featuriser": "waveform", "sample_rate": SAMPLE_RATE, "dtype": self.dtype}

    def min_samples(self) -> int:
        return 400

    def __call__(self, waveform) -> np.ndarray:
        return waveform.numpy().astype(np.float16).reshape(-1, 1)


def featuriser_of(preset_or_featuriser: str | Featuriser) -> Featuriser:
    """A preset name is its MFCC featuriser."""
    if isinstance(preset_or_featuriser, str):
        check_preset(preset_or_featuriser)
        return Mfcc(preset_or_featuriser)
    return preset_or_featuriser

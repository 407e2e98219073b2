"""Feature store: MFCC frames (Arrow IPC, memory-mapped) and decoded, resized images (uint8 .npy).

Computed once per corpus and shared by every trial of every sweep.  Each store file is named
by a hash of its preset and its sources (paths, sizes, modification times), and a manifest
beside it records both, so a changed preset or corpus is computed anew and never silently
reused.  Files are written under a temporary name and renamed when complete: a failed or
interrupted run leaves every finished store as it was.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgs.data.records import Corpus, CorpusError
from vgs.progress import Progress

SAMPLE_RATE = 16000
STORE_VERSION = 1

# ------------------------------------------------------------------ MFCC presets

PRESETS = {
    # seed 002 §5.1: torchaudio's MFCC defaults with 40 coefficients (n_fft 400, hop 200 = 12.5 ms)
    "mortazavi": {"n_mfcc": 40, "n_fft": 400, "hop": 200, "n_mels": 128, "energy_deltas": False},
    # seeds 003/004: 12 MFCC + log energy, deltas and delta-deltas (39), 25 ms window, 10 ms shift
    "chrupala": {"n_mfcc": 13, "n_fft": 400, "hop": 160, "n_mels": 40, "energy_deltas": True},
}


def preset_dim(name: str) -> int:
    return 39 if check_preset(name)["energy_deltas"] else PRESETS[name]["n_mfcc"]


def check_preset(name: str) -> dict:
    if name not in PRESETS:
        raise CorpusError(f"unknown feature preset '{name}'; known: {', '.join(PRESETS)}")
    return PRESETS[name]


_TRANSFORMS: dict = {}


def mfcc(waveform, preset: str) -> np.ndarray:
    """16 kHz mono float waveform (1-D tensor) -> (frames, dims) float32."""
    import torch
    import torchaudio.functional as AF
    import torchaudio.transforms as T

    p = check_preset(preset)
    if preset not in _TRANSFORMS:
        # torchaudio's default 128 mel bands over a 400-point FFT leave some bands empty and it
        # warns; these are the paper's settings, so the warning is expected and silenced.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _TRANSFORMS[preset] = T.MFCC(sample_rate=SAMPLE_RATE, n_mfcc=p["n_mfcc"],
                                         melkwargs={"n_fft": p["n_fft"], "hop_length": p["hop"], "n_mels": p["n_mels"]})
    with torch.no_grad():
        feats = _TRANSFORMS[preset](waveform)  # (n_mfcc, frames)
        if p["energy_deltas"]:
            frames = feats.shape[1]
            padded = torch.nn.functional.pad(waveform[None], (p["n_fft"] // 2, p["n_fft"] // 2), mode="reflect")[0]
            windows = padded.unfold(0, p["n_fft"], p["hop"])[:frames]
            log_energy = torch.log((windows ** 2).sum(1) + 1e-10)
            static = torch.cat([feats[1:], log_energy[None]], 0)  # c1..c12 + log energy
            d1 = AF.compute_deltas(static[None])[0]
            d2 = AF.compute_deltas(d1[None])[0]
            feats = torch.cat([static, d1, d2], 0)
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


def _featurise(job: tuple[str, str, str, bool]) -> tuple[str, np.ndarray | None, str]:
    """(id, frames, "") or, when skipping bad files, (id, None, reason)."""
    import torch

    torch.set_num_threads(1)
    uid, path, preset, skip_bad = job
    try:
        return uid, mfcc(load_audio(path), preset), ""
    except CorpusError as e:
        if not skip_bad:
            raise
        return uid, None, str(e)


# ------------------------------------------------------------------ hashing


def _source_hash(entries: list[tuple[str, str]], params: dict) -> str:
    """Hash of (key, path, size, mtime) for every source file plus the parameters."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for key, path in entries:
        try:
            st = os.stat(path)
        except FileNotFoundError as e:
            raise CorpusError(f"file not found: {path}") from e
        h.update(f"{key}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# ------------------------------------------------------------------ speech store


@dataclass
class SpeechStore:
    """Memory-mapped MFCC frames keyed by utterance id (zero-copy, shared by processes)."""

    path: Path
    manifest: dict

    def __post_init__(self):
        import pyarrow as pa

        table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        feats = table.column("feats").combine_chunks()
        self._values = feats.values.to_numpy(zero_copy_only=True)
        self._offsets = feats.offsets.to_numpy()
        self.ids = table.column("id").to_pylist()
        self.index = {u: i for i, u in enumerate(self.ids)}
        self.dim = int(self.manifest["dim"])
        self.mean = np.asarray(self.manifest["mean"], np.float32)
        self.std = np.asarray(self.manifest["std"], np.float32)
        self.lengths = np.diff(self._offsets) // self.dim

    def frames(self, uid: str) -> np.ndarray:
        """(frames, dim) raw MFCCs."""
        i = self.index[uid]
        return self._values[self._offsets[i]:self._offsets[i + 1]].reshape(-1, self.dim)

    def normalised(self, uid: str) -> np.ndarray:
        """Frames standardised with the training split's per-dimension mean and std."""
        return (self.frames(uid) - self.mean) / self.std


def build_speech_store(corpus: Corpus, preset: str, store_dir: str | Path, max_frames: int = 8192,
                       workers: int | None = None, quiet: bool = False, skip_bad: bool = False) -> SpeechStore:
    """skip_bad: leave out unreadable audio files instead of stopping, and list each one with its
    reason in the manifest ("skipped") and in a report file beside the store."""
    import pyarrow as pa

    check_preset(preset)
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    params = {"version": STORE_VERSION, "preset": preset, **PRESETS[preset], "max_frames": max_frames,
              "skip_bad": skip_bad}
    digest = _source_hash([(u.id, u.audio) for u in corpus.utterances], params)
    path = store_dir / f"speech-{preset}-{digest}.arrow"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return SpeechStore(path, json.loads(manifest_path.read_text()))

    jobs = [(u.id, u.audio, preset, skip_bad) for u in corpus.utterances]
    train_ids = {u.id for u in corpus.utterances if u.split == "train"}
    dim = preset_dim(preset)
    progress = Progress(f"MFCC ({preset}) {corpus.name}", total=len(jobs), unit="utt", quiet=quiet)
    schema = pa.schema([("id", pa.string()), ("feats", pa.list_(pa.float32()))])
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    dropped: list[str] = []
    skipped: list[dict] = []
    total = np.zeros(dim, np.float64)
    total_sq = np.zeros(dim, np.float64)
    n_frames = 0
    workers = min(workers or os.cpu_count() or 1, max(1, len(jobs) // 64))
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            ids, rows = [], []

            def flush():
                if ids:
                    writer.write_batch(pa.record_batch([pa.array(ids), pa.array(rows, pa.list_(pa.float32()))],
                                                       schema=schema))
                    ids.clear()
                    rows.clear()

            results = pool.imap(_featurise, jobs, chunksize=32) if pool else map(_featurise, jobs)
            for uid, feats, reason in results:
                progress.update(1)
                if feats is None:
                    skipped.append({"id": uid, "reason": reason})
                    continue
                if feats.shape[0] > max_frames:
                    dropped.append(uid)
                    continue
                if uid in train_ids:
                    total += feats.sum(0)
                    total_sq += (feats.astype(np.float64) ** 2).sum(0)
                    n_frames += feats.shape[0]
                ids.append(uid)
                rows.append(feats.reshape(-1))
                if len(ids) >= 512:
                    flush()
            flush()
    except CorpusError as e:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"{e} (data.skip_bad=true / --skip-bad leaves such files out, with a report)") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool:
            pool.terminate()
    progress.close()
    if n_frames == 0:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"corpus {corpus.root} has no training speech left after featurising")
    mean = total / n_frames
    std = np.sqrt(np.maximum(total_sq / n_frames - mean ** 2, 1e-8))
    manifest = {"params": params, "source_hash": digest, "corpus": str(corpus.root), "dim": dim,
                "utterances": len(jobs) - len(dropped) - len(skipped), "dropped_over_max_frames": len(dropped),
                "dropped_ids": dropped, "skipped": skipped, "mean": mean.tolist(), "std": std.tolist()}
    os.replace(tmp, path)
    _write_json_atomic(manifest_path, manifest)
    if skipped:
        report = path.with_suffix(".skipped.json")
        _write_json_atomic(report, {"store": str(path), "skipped": skipped})
        print(f"skipped {len(skipped)} unreadable audio file(s); report: {report}", file=sys.stderr)
    if dropped and not quiet:
        print(f"dropped {len(dropped)} utterance(s) over {max_frames} frames", file=sys.stderr)
    return SpeechStore(path, manifest)


# ------------------------------------------------------------------ image store


@dataclass
class ImageStore:
    """Decoded images, shorter side resized to `size` and centre-cropped square, uint8 NHWC."""

    path: Path
    manifest: dict

    def __post_init__(self):
        self.array = np.load(self.path, mmap_mode="r")
        self.index = {name: i for i, name in enumerate(self.manifest["images"])}


def _load_image(path: str, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise CorpusError(f"corrupt or unreadable image file {path}: {e}") from e


def build_image_store(corpus: Corpus, size: int, store_dir: str | Path, quiet: bool = False) -> ImageStore:
    if corpus.image_dir is None:
        raise CorpusError(f"corpus {corpus.root} has no image folder; pass data.image_dir")
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    names = corpus.images()
    params = {"version": STORE_VERSION, "size": size}
    digest = _source_hash([(n, str(corpus.image_dir / n)) for n in names], params)
    path = store_dir / f"images-{size}-{digest}.npy"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return ImageStore(path, json.loads(manifest_path.read_text()))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    progress = Progress(f"images ({size}px) {corpus.name}", total=len(names), unit="img", quiet=quiet)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3))
        for i, name in enumerate(names):
            out[i] = _load_image(str(corpus.image_dir / name), size)
            progress.update(1)
        out.flush()
        del out
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    progress.close()
    os.replace(tmp, path)
    manifest = {"params": params, "source_hash": digest, "corpus": str(corpus.root), "images": names}
    _write_json_atomic(manifest_path, manifest)
    return ImageStore(path, manifest)

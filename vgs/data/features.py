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
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vgs.data.image_features import align_features, load_feature_table
from vgs.data.records import Corpus, CorpusError
from vgs.log import get_logger
from vgs.progress import Progress

log = get_logger(__name__)

SAMPLE_RATE = 16000
STORE_VERSION = 1

# ------------------------------------------------------------------ MFCC presets

PRESETS = {
    # Mortazavi 2020 §5.1: torchaudio's MFCC defaults with 40 coefficients (n_fft 400, hop 200 = 12.5 ms)
    "mortazavi": {"n_mfcc": 40, "n_fft": 400, "hop": 200, "n_mels": 128, "energy_deltas": False},
    # Higy et al. 2020: 12 MFCC + log energy, deltas and delta-deltas (39), 25 ms window, 10 ms shift
    "chrupala": {"n_mfcc": 13, "n_fft": 400, "hop": 160, "n_mels": 40, "energy_deltas": True},
    # Chrupała 2019 §4: the same 12 MFCC + log energy without deltas (13)
    "chrupala13": {"n_mfcc": 13, "n_fft": 400, "hop": 160, "n_mels": 40, "energy_deltas": True, "deltas": False},
}


def preset_dim(name: str) -> int:
    p = check_preset(name)
    if not p["energy_deltas"]:
        return p["n_mfcc"]
    return 39 if p.get("deltas", True) else 13


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


def _featurise_shard(job: tuple) -> tuple[str, int]:
    """Featurise one shard of utterances and write it as PARTS/NAME.arrow plus NAME.json (its
    statistics, written last: a shard counts as done once its .json exists)."""
    import pyarrow as pa
    import torch

    torch.set_num_threads(1)
    name, items, preset, skip_bad, max_frames, parts = job
    parts = Path(parts)
    dim = preset_dim(preset)
    ids, rows, dropped, skipped = [], [], [], []
    total, total_sq, n_frames = np.zeros(dim), np.zeros(dim), 0
    for uid, path, is_train in items:
        try:
            feats = mfcc(load_audio(path), preset)
        except CorpusError as e:
            if not skip_bad:
                raise
            skipped.append({"id": uid, "reason": str(e)})
            continue
        if feats.shape[0] > max_frames:
            dropped.append(uid)
            continue
        if is_train:
            total += feats.sum(0)
            total_sq += (feats.astype(np.float64) ** 2).sum(0)
            n_frames += feats.shape[0]
        ids.append(uid)
        rows.append(feats.reshape(-1))
    schema = pa.schema([("id", pa.string()), ("feats", pa.list_(pa.float32()))])
    tmp = parts / f"{name}.arrow.tmp{os.getpid()}"
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(
            pa.record_batch([pa.array(ids, pa.string()), pa.array(rows, pa.list_(pa.float32()))], schema=schema)
        )
    os.replace(tmp, parts / f"{name}.arrow")
    _write_json_atomic(
        parts / f"{name}.json",
        {
            "sum": total.tolist(),
            "sum_sq": total_sq.tolist(),
            "frames": n_frames,
            "dropped": dropped,
            "skipped": skipped,
        },
    )
    return name, len(items)


def _remove_stale_tmp(parts: Path) -> None:
    """Half-written shards of killed runs (NAME.arrow.tmpPID whose process is gone)."""
    for tmp in parts.glob("*.tmp*"):
        pid = tmp.name.rpartition(".tmp")[2]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # a live process of another user


def shard_size_for(n: int) -> int:
    """Utterances per shard: small enough for frequent progress and little lost work on
    interruption, large enough that per-shard overhead does not show (16..500)."""
    return max(16, min(500, -(-n // 64)))


# ------------------------------------------------------------------ hashing


def _file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _content_entries(entries: list[tuple[str, str]], store_dir: Path) -> list[str]:
    """One line per source file: its key and a hash of its bytes, so a store is found again only
    for the same content (size and mtime alone miss a re-recorded file of the same size that an
    archive extracted with fixed mtimes).  Hashes are computed once and cached in the store folder
    under (size, mtime, ctime, inode): a rewritten or re-extracted file changes its ctime or inode,
    which no tool sets back, so it is hashed again."""
    cache_path = store_dir / "content-hashes.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (FileNotFoundError, ValueError):
        cache = {}
    out, changed = [], False
    for key, path in entries:
        try:
            st = os.stat(path)
        except FileNotFoundError as e:
            raise CorpusError(f"file not found: {path}") from e
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(path)
        if hit is None or hit[:4] != stamp:
            cache[path] = hit = stamp + [_file_digest(path)]
            changed = True
        out.append(f"{key}\0{hit[4]}\n")
    if changed:
        _write_json_atomic(cache_path, cache)
    return out


def _hash_lines(lines: list[str], params: dict) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for line in lines:
        h.update(line.encode())
    return h.hexdigest()[:16]


def _source_hash(entries: list[tuple[str, str]], params: dict, store_dir: Path) -> str:
    """Hash of (key, content hash) of every source file plus the parameters."""
    return _hash_lines(_content_entries(entries, store_dir), params)


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
        return self._values[self._offsets[i] : self._offsets[i + 1]].reshape(-1, self.dim)

    def normalised(self, uid: str, per_utterance: bool = False) -> np.ndarray:
        """Frames standardised per dimension: with the training split's mean and std, or with the
        utterance's own (cepstral mean and variance normalisation: removes much of the speaker and
        channel from the MFCCs)."""
        return self.standardise(self.frames(uid), per_utterance)

    def standardise(self, f: np.ndarray, per_utterance: bool = False) -> np.ndarray:
        """(frames, dim) MFCCs of any recording, standardised as this store's utterances are."""
        if per_utterance:
            return (f - f.mean(0)) / np.maximum(f.std(0), 1e-3 * self.std)
        return (f - self.mean) / self.std


def build_speech_store(
    corpus: Corpus,
    preset: str,
    store_dir: str | Path,
    max_frames: int = 8192,
    workers: int | None = None,
    skip_bad: bool = False,
    shard_size: int | None = None,
) -> SpeechStore:
    """MFCCs of every utterance of `corpus`, computed once.

    Streamed and resumable: utterances are featurised in shards by parallel worker processes,
    each shard written to STORE/speech-PRESET.parts/ as soon as it is done (bounded memory),
    and named by a hash of its own sources, so an interrupted or failed run, rerun, computes
    only the shards that are missing (also after a corrupt file was fixed).  The shards are
    then merged into one memory-mapped file and removed.
    skip_bad: leave out unreadable audio files instead of stopping, and list each one with its
    reason in the manifest ("skipped") and in a report file beside the store; items the
    importer already left out (missing files) are listed too."""
    import pyarrow as pa

    check_preset(preset)
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    params = {
        "version": STORE_VERSION,
        "preset": preset,
        **PRESETS[preset],
        "max_frames": max_frames,
        "skip_bad": skip_bad,
    }
    # which utterances train is part of the key: the normalisation statistics come from them
    lines = [
        f"{u.split == 'train'}\0{line}"
        for u, line in zip(corpus.utterances, _content_entries([(u.id, u.audio) for u in corpus.utterances], store_dir))
    ]
    digest = _hash_lines(lines, params)
    path = store_dir / f"speech-{preset}-{digest}.arrow"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return SpeechStore(path, json.loads(manifest_path.read_text()))

    utts = corpus.utterances
    size = shard_size or shard_size_for(len(utts))
    parts = store_dir / f"speech-{preset}.parts"
    parts.mkdir(exist_ok=True)
    shards = [(_hash_lines(lines[a : a + size], params), a) for a in range(0, len(utts), size)]
    todo = [(name, a) for name, a in shards if not (parts / f"{name}.json").exists()]
    progress = Progress(f"MFCC ({preset}) {corpus.name}", total=len(utts), unit="utt")
    if len(todo) < len(shards):
        done = len(utts) - sum(len(utts[a : a + size]) for _, a in todo)
        log.info(f"resuming: {done} of {len(utts)} utterances already featurised in {parts}")
    jobs = [
        (
            name,
            [(u.id, u.audio, u.split == "train") for u in utts[a : a + size]],
            preset,
            skip_bad,
            max_frames,
            str(parts),
        )
        for name, a in todo
    ]
    workers = min(workers or os.cpu_count() or 1, max(1, len(utts) // 64), max(1, len(jobs)))
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        for _, n in pool.imap_unordered(_featurise_shard, jobs) if pool else map(_featurise_shard, jobs):
            progress.update(n)
    except CorpusError as e:
        raise CorpusError(
            f"{e} (data.skip_bad=true / --skip-bad leaves such files out, with a report; "
            f"shards already computed are kept in {parts} and reused by the next run)"
        ) from e
    finally:
        if pool:
            pool.terminate()
    progress.close()

    # Merge the shards in corpus order, one at a time (bounded memory).
    dim = preset_dim(preset)
    total, total_sq, n_frames = np.zeros(dim), np.zeros(dim), 0
    dropped: list[str] = []
    skipped: list[dict] = list(corpus.skipped)
    schema = pa.schema([("id", pa.string()), ("feats", pa.list_(pa.float32()))])
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    kept = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for name, _ in shards:
                stats = json.loads((parts / f"{name}.json").read_text())
                total += stats["sum"]
                total_sq += stats["sum_sq"]
                n_frames += stats["frames"]
                dropped += stats["dropped"]
                skipped += stats["skipped"]
                table = pa.ipc.open_file(pa.memory_map(str(parts / f"{name}.arrow"), "r")).read_all()
                kept += table.num_rows
                writer.write_table(table)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if n_frames == 0:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"corpus {corpus.root} has no training speech left after featurising")
    mean = total / n_frames
    std = np.sqrt(np.maximum(total_sq / n_frames - mean**2, 1e-8))
    manifest = {
        "params": params,
        "source_hash": digest,
        "corpus": str(corpus.root),
        "dim": dim,
        "utterances": kept,
        "dropped_over_max_frames": len(dropped),
        "dropped_ids": dropped,
        "skipped": skipped,
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    os.replace(tmp, path)
    _write_json_atomic(manifest_path, manifest)
    for name, _ in shards:
        (parts / f"{name}.arrow").unlink(missing_ok=True)
        (parts / f"{name}.json").unlink(missing_ok=True)
    _remove_stale_tmp(parts)
    if not any(parts.iterdir()):
        parts.rmdir()
    if skipped:
        report = path.with_suffix(".skipped.json")
        _write_json_atomic(report, {"store": str(path), "skipped": skipped})
        log.warning(f"skipped {len(skipped)} item(s) (missing or unreadable); report: {report}")
    if dropped:
        log.info(f"dropped {len(dropped)} utterance(s) over {max_frames} frames")
    log.info(
        f"speech store: {kept} utterances ({len(dropped)} over {max_frames} frames dropped, "
        f"{len(skipped)} skipped) -> {path}"
    )
    return SpeechStore(path, manifest)


# ------------------------------------------------------------------ image store


@dataclass
class ImageStore:
    """Decoded images, shorter side resized to `size` and centre-cropped square, uint8 NHWC; or,
    built from a user's feature file, one float32 feature vector per image."""

    path: Path
    manifest: dict

    def __post_init__(self):
        self.array = np.load(self.path, mmap_mode="r")
        self.index = {name: i for i, name in enumerate(self.manifest["images"])}
        # > 0: rows are precomputed feature vectors of this size, not pixels
        self.feature_dim = int(self.manifest.get("feature_dim", 0))


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


def build_image_store(corpus: Corpus, size: int, store_dir: str | Path, skip_bad: bool = False) -> ImageStore:
    """skip_bad: leave out corrupt or unreadable images (listed in the manifest and a report)
    instead of stopping; their captions then have no image and are not used."""
    if corpus.image_dir is None:
        raise CorpusError(f"corpus {corpus.root} has no image folder; pass data.image_dir")
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    names = corpus.images()
    params = {"version": STORE_VERSION, "size": size}
    digest = _source_hash([(n, str(corpus.image_dir / n)) for n in names], params, store_dir)
    path = store_dir / f"images-{size}-{digest}.npy"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return ImageStore(path, json.loads(manifest_path.read_text()))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    progress = Progress(f"images ({size}px) {corpus.name}", total=len(names), unit="img")
    kept, skipped = [], []
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(names), size, size, 3))
        for name in names:
            try:
                out[len(kept)] = _load_image(str(corpus.image_dir / name), size)
                kept.append(name)
            except CorpusError as e:
                if not skip_bad:
                    raise CorpusError(
                        f"{e} (data.skip_bad=true / --skip-bad leaves such files out, with a report)"
                    ) from e
                skipped.append({"id": name, "reason": str(e)})
            progress.update(1)
        out.flush()
        if skipped:  # the rows of the images kept, in order
            np.save(tmp.with_name(tmp.name + ".kept.npy"), np.asarray(out[: len(kept)]))
            del out
            os.replace(tmp.with_name(tmp.name + ".kept.npy"), tmp)
        else:
            del out
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    progress.close()
    if not kept:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"corpus {corpus.root}: no readable image")
    os.replace(tmp, path)
    manifest = {"params": params, "source_hash": digest, "corpus": str(corpus.root), "images": kept, "skipped": skipped}
    _write_json_atomic(manifest_path, manifest)
    if skipped:
        report = path.with_suffix(".skipped.json")
        _write_json_atomic(report, {"store": str(path), "skipped": skipped})
        log.warning(f"skipped {len(skipped)} unreadable image(s); report: {report}")
    return ImageStore(path, manifest)


def build_feature_image_store(corpus: Corpus, feature_file: str | Path, store_dir: str | Path) -> ImageStore:
    """Precomputed image features (see vgs.data.image_features) in the corpus's image order."""

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    names = corpus.images()
    feature_file = Path(feature_file).expanduser().resolve()
    digest = _source_hash([("features", str(feature_file))], {"version": STORE_VERSION, "images": names}, store_dir)
    path = store_dir / f"imagefeats-{digest}.npy"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return ImageStore(path, json.loads(manifest_path.read_text()))
    table_names, feats = load_feature_table(feature_file)
    aligned = align_features(corpus, table_names, feats, str(feature_file))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npy")
    np.save(tmp, aligned)
    os.replace(tmp, path)
    manifest = {
        "params": {"version": STORE_VERSION, "source": str(feature_file)},
        "source_hash": digest,
        "corpus": str(corpus.root),
        "images": names,
        "feature_dim": int(aligned.shape[1]),
    }
    _write_json_atomic(manifest_path, manifest)
    log.info(f"image features: {len(names)} images x {aligned.shape[1]} from {feature_file}")
    return ImageStore(path, manifest)

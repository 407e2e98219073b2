"""Feature store: per-recording frames (Arrow IPC, memory-mapped) of a featuriser (MFCCs, the 16 kHz
waveform, or a frozen SSL model's hidden states: vgs.data.featurisers) and decoded, resized images
(uint8 .npy).

Computed once per corpus and shared by every trial of every sweep.  Each store file is named
by a hash of its preset and its sources (paths, sizes, modification times), and a manifest
beside it records both, so a changed preset or corpus is computed anew and never silently
reused.  Files are written under a temporary name and renamed when complete: a failed or
interrupted run leaves every finished store as it was.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgs.data.featurisers import SAMPLE_RATE, Featuriser, featuriser_of, load_audio
from vgs.data.locking import process_alive
from vgs.data.records import Corpus, CorpusError
from vgs.data.store_hash import STORE_VERSION, content_entries, hash_lines, write_json_atomic
from vgs.data.store_size import gib, require_space, speech_store_bytes
from vgs.log import get_logger
from vgs.progress import Progress

log = get_logger(__name__)


def _featurise_shard(job: tuple) -> tuple[str, int]:
    """Featurise one shard of utterances and write it as PARTS/NAME.arrow plus NAME.json (its
    statistics, written last: a shard counts as done once its .json exists)."""
    import pyarrow as pa
    import torch

    name, items, featuriser, skip_bad, max_frames, parts = job
    if featuriser.workers != 1:
        torch.set_num_threads(1)  # one process per CPU
    parts = Path(parts)
    dim = featuriser.dim
    ids, rows, dropped, skipped = [], [], [], []
    total, total_sq, n_frames = np.zeros(dim), np.zeros(dim), 0
    for uid, path, is_train in items:
        try:
            feats = featuriser(_long_enough(load_audio(path), featuriser, path))
            if not np.isfinite(feats).all():
                raise CorpusError(f"{path}: its features hold NaN or infinite values (a corrupt recording)")
        except CorpusError as e:
            if not skip_bad:
                raise
            skipped.append({"id": uid, "reason": str(e)})
            continue
        if feats.shape[0] > max_frames:
            dropped.append(uid)
            continue
        if is_train:
            total += feats.sum(0, dtype=np.float64)
            total_sq += (feats.astype(np.float64) ** 2).sum(0)
            n_frames += feats.shape[0]
        ids.append(uid)
        rows.append(feats.reshape(-1))
    values = pa.list_(pa.float16() if featuriser.dtype == "float16" else pa.float32())
    schema = pa.schema([("id", pa.string()), ("feats", values)])
    tmp = parts / f"{name}.arrow.tmp{os.getpid()}"
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(pa.record_batch([pa.array(ids, pa.string()), pa.array(rows, values)], schema=schema))
    os.replace(tmp, parts / f"{name}.arrow")
    write_json_atomic(
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


def _long_enough(wav, featuriser: Featuriser, path: str):
    if len(wav) < featuriser.min_samples():
        raise CorpusError(
            f"{path}: {len(wav)} samples at {SAMPLE_RATE} Hz is shorter than the {featuriser.name} features need "
            f"({featuriser.min_samples()} samples)"
        )
    return wav


def _remove_stale_tmp(parts: Path) -> None:
    """Half-written shards of killed runs (NAME.arrow.tmpPID whose process is gone)."""
    for tmp in parts.glob("*.tmp*"):
        pid = tmp.name.rpartition(".tmp")[2]
        if not pid.isdigit() or not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def shard_size_for(n: int) -> int:
    """Utterances per shard: small enough for frequent progress and little lost work on
    interruption, large enough that per-shard overhead does not show (16..500)."""
    return max(16, min(500, -(-n // 64)))


# ------------------------------------------------------------------ hashing


# ------------------------------------------------------------------ speech store


@dataclass
class SpeechStore:
    """Memory-mapped frames keyed by utterance id (zero-copy, shared by processes): MFCCs, waveforms
    or cached SSL states (float32 or fp16, as its manifest says)."""

    path: Path
    manifest: dict

    def __getstate__(self) -> dict:  # pickled as its file and manifest: the frames stay on disk
        return {"path": self.path, "manifest": self.manifest}

    def __setstate__(self, state: dict) -> None:
        self.path, self.manifest = state["path"], state["manifest"]
        self.__post_init__()

    def __post_init__(self):
        import pyarrow as pa

        table = pa.ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        # One memory-mapped chunk per merged shard, each read in place: combining them would copy
        # every frame into memory (about 50 GB at Places size); only the index lives in memory.
        chunks = table.column("feats").chunks
        self._values = [c.values.to_numpy(zero_copy_only=True) for c in chunks]
        offsets = [c.offsets.to_numpy() for c in chunks]
        self._chunk = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks])
        self._row = np.concatenate([np.arange(len(c)) for c in chunks]) if chunks else np.zeros(0, np.int64)
        self._offsets = offsets
        self.ids = table.column("id").to_pylist()
        self.index = {u: i for i, u in enumerate(self.ids)}
        self.dim = int(self.manifest["dim"])
        self.mean = np.asarray(self.manifest["mean"], np.float32)
        self.std = np.asarray(self.manifest["std"], np.float32)
        self.lengths = np.concatenate([np.diff(o) for o in offsets]) // self.dim if chunks else np.zeros(0, np.int64)
        # MFCCs are standardised; waveforms and SSL states are read as they are (stores made before
        # the manifest said so are MFCC stores)
        self.standardised = bool(self.manifest.get("standardise", True))
        self.hop = int(self.manifest.get("hop") or self.manifest["params"]["hop"])  # samples per frame at 16 kHz

    def frames(self, uid: str) -> np.ndarray:
        """(frames, dim) raw MFCCs."""
        i = self.index[uid]
        c, r = self._chunk[i], self._row[i]
        offsets = self._offsets[c]
        return self._values[c][offsets[r] : offsets[r + 1]].reshape(-1, self.dim)

    def normalised(self, uid: str, per_utterance: bool = False) -> np.ndarray:
        """Frames standardised per dimension: with the training split's mean and std, or with the
        utterance's own (cepstral mean and variance normalisation: removes much of the speaker and
        channel from the MFCCs)."""
        return self.standardise(self.frames(uid), per_utterance)

    def standardise(self, f: np.ndarray, per_utterance: bool = False) -> np.ndarray:
        """(frames, dim) frames of any recording, standardised as this store's utterances are (float32)."""
        if not self.standardised:
            return f.astype(np.float32)
        if per_utterance:
            return (f - f.mean(0)) / np.maximum(f.std(0), 1e-3 * self.std)
        return (f - self.mean) / self.std


def build_speech_store(
    corpus: Corpus,
    preset: str | Featuriser,
    store_dir: str | Path,
    max_frames: int = 8192,
    workers: int | None = None,
    skip_bad: bool = False,
    shard_size: int | None = None,
) -> SpeechStore:
    """The frames of every utterance of `corpus` (a preset's MFCCs, or any featuriser's), computed once.

    Streamed and resumable: utterances are featurised in shards by parallel worker processes,
    each shard written to STORE/speech-NAME.parts/ as soon as it is done (bounded memory),
    and named by a hash of its own sources, so an interrupted or failed run, rerun, computes
    only the shards that are missing (also after a corrupt file was fixed).  The shards are
    then merged into one memory-mapped file and removed.
    skip_bad: leave out unreadable audio files instead of stopping, and list each one with its
    reason in the manifest ("skipped") and in a report file beside the store; items the
    importer already left out (missing files) are listed too."""
    featuriser = featuriser_of(preset)
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    params = {"version": STORE_VERSION, **featuriser.params(), "max_frames": max_frames, "skip_bad": skip_bad}
    # which utterances train is part of the key: the normalisation statistics come from them
    lines = [
        f"{u.split == 'train'}\0{line}"
        for u, line in zip(corpus.utterances, content_entries([(u.id, u.audio) for u in corpus.utterances], store_dir))
    ]
    digest = hash_lines(lines, params)
    path = store_dir / f"speech-{featuriser.name}-{digest}.arrow"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return SpeechStore(path, json.loads(manifest_path.read_text()))

    size = shard_size or shard_size_for(len(corpus.utterances))
    parts = store_dir / f"speech-{featuriser.name}.parts"
    parts.mkdir(exist_ok=True)
    check_room(corpus, featuriser, parts)
    shards = [(hash_lines(lines[a : a + size], params), a) for a in range(0, len(lines), size)]
    _featurise_shards(corpus, featuriser, shards, size, parts, workers, skip_bad, max_frames)
    manifest = {"params": params, "source_hash": digest, "corpus": str(corpus.root), "dim": featuriser.dim}
    manifest.update(standardise=featuriser.standardise, dtype=featuriser.dtype, hop=featuriser.hop)
    manifest.update(_merge_shards([name for name, _ in shards], parts, path, list(corpus.skipped), featuriser))
    if not manifest.pop("training_frames"):
        path.unlink(missing_ok=True)
        raise CorpusError(f"corpus {corpus.root} has no training speech left after featurising")
    write_json_atomic(manifest_path, manifest)
    for name, _ in shards:
        (parts / f"{name}.arrow").unlink(missing_ok=True)
        (parts / f"{name}.json").unlink(missing_ok=True)
    _remove_stale_tmp(parts)
    if not any(parts.iterdir()):
        parts.rmdir()
    _log_store(path, manifest, max_frames)
    return SpeechStore(path, manifest)


def check_room(corpus: Corpus, featuriser: Featuriser, parts: Path) -> None:
    """Refuse a build its disk cannot hold: the shards and the merged file exist side by side while
    merging (twice the store), less the shards an interrupted build already wrote."""
    itemsize = 2 if featuriser.dtype == "float16" else 4
    estimate = speech_store_bytes(corpus.utterances, featuriser.dim, featuriser.hop, SAMPLE_RATE, itemsize)
    written = sum(f.stat().st_size for f in parts.glob("*.arrow"))
    what = f"{featuriser.name} store of {corpus.name} ({len(corpus.utterances)} utterances, about {gib(estimate)}"
    log.info(f"{what})")
    require_space(parts, 2 * estimate - written, f"the {what}; twice that while its shards are merged)")


def _featurise_shards(
    corpus: Corpus,
    featuriser: Featuriser,
    shards: list[tuple[str, int]],
    size: int,
    parts: Path,
    workers: int | None,
    skip_bad: bool,
    max_frames: int,
) -> None:
    """Featurise the shards not yet in `parts` (a rerun computes only the missing ones)."""
    utts = corpus.utterances
    todo = [(name, a) for name, a in shards if not (parts / f"{name}.json").exists()]
    progress = Progress(f"features ({featuriser.name}) {corpus.name}", total=len(utts), unit="utt")
    if len(todo) < len(shards):
        done = len(utts) - sum(len(utts[a : a + size]) for _, a in todo)
        log.info(f"resuming: {done} of {len(utts)} utterances already featurised in {parts}")
    jobs = [
        (
            name,
            [(u.id, u.audio, u.split == "train") for u in utts[a : a + size]],
            featuriser,
            skip_bad,
            max_frames,
            str(parts),
        )
        for name, a in todo
    ]
    workers = min(workers or featuriser.workers or os.cpu_count() or 1, max(1, len(utts) // 64), max(1, len(jobs)))
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


def _merge_shards(names: list[str], parts: Path, path: Path, skipped: list[dict], featuriser: Featuriser) -> dict:
    """Append the shards to `path` in corpus order, one at a time (bounded memory); the manifest's
    counts and the training split's normalisation statistics."""
    import pyarrow as pa

    total: Any = 0.0  # then the per-dimension sums (arrays)
    total_sq: Any = 0.0
    n_frames, kept = 0, 0
    dropped: list[str] = []
    values = pa.list_(pa.float16() if featuriser.dtype == "float16" else pa.float32())
    schema = pa.schema([("id", pa.string()), ("feats", values)])
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for name in names:
                stats = json.loads((parts / f"{name}.json").read_text())
                total = total + np.asarray(stats["sum"])
                total_sq = total_sq + np.asarray(stats["sum_sq"])
                n_frames += stats["frames"]
                dropped += stats["dropped"]
                skipped += stats["skipped"]
                table = pa.ipc.open_file(pa.memory_map(str(parts / f"{name}.arrow"), "r")).read_all()
                kept += table.num_rows
                writer.write_table(table)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    mean = total / max(n_frames, 1)
    std = np.sqrt(np.maximum(total_sq / max(n_frames, 1) - mean**2, 1e-8))
    return {
        "utterances": kept,
        "training_frames": n_frames,
        "dropped_over_max_frames": len(dropped),
        "dropped_ids": dropped,
        "skipped": skipped,
        "mean": np.atleast_1d(mean).tolist(),
        "std": np.atleast_1d(std).tolist(),
    }


def _log_store(path: Path, manifest: dict, max_frames: int) -> None:
    skipped, dropped = manifest["skipped"], manifest["dropped_ids"]
    if skipped:
        report = path.with_suffix(".skipped.json")
        write_json_atomic(report, {"store": str(path), "skipped": skipped})
        log.warning(f"skipped {len(skipped)} item(s) (missing or unreadable); report: {report}")
    if dropped:
        log.info(f"dropped {len(dropped)} utterance(s) over {max_frames} frames")
    log.info(
        f"speech store: {manifest['utterances']} utterances ({len(dropped)} over {max_frames} frames dropped, "
        f"{len(skipped)} skipped) -> {path}"
    )


# ------------------------------------------------------------------ image store

"""Phoneme alignments of the built-in corpus, for Chrupała 2019's phoneme-decoding probe (Table 5).

The generator does not keep them; they are recomputed exactly: every caption is synthesised
again as the generator did (the same text, voice and seed, a fresh eSpeak NG process per
speaker), this time collecting eSpeak's phoneme events, and shifted by the leading silence the
generator added (drawn from the same seed).  The corpus itself is never changed; the alignments
are cached beside it in phonemes.json.  A real corpus has the timings its user brings from a forced
aligner (data.alignments: vgs.data.forced_alignments); without them `alignments` returns None.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from vgs.data.espeak import Espeak, Voice
from vgs.data.forced_alignments import user_alignments
from vgs.data.fresh_processes import fresh_process_pool
from vgs.data.locking import exclusive
from vgs.data.synth import SAMPLE_RATE, silence_pads

CACHE = "phonemes.json"
PAUSE = "_"  # eSpeak's pause mnemonics start with it: not a phoneme

Segment = tuple[str, float, float]  # (phoneme, start s, end s) in the stored recording


def is_builtin(root: Path) -> bool:
    return (root / "corpus.json").exists() and (root / "speakers.json").exists()


def leading_silence(seed: int) -> float:
    """Seconds of silence the generator put before caption `seed`'s speech."""
    return int(silence_pads(np.random.default_rng(seed))[0]) / SAMPLE_RATE


def segments(events: list[tuple[str, int]], offset: float) -> list[Segment]:
    """eSpeak's (mnemonic, start ms) events -> phoneme segments, each ending where the next event
    starts; stress marks dropped ("'E" -> "E"), pauses left out."""
    out = []
    for (name, start), (_, end) in zip(events, events[1:]):
        phoneme = name.lstrip("',")
        if phoneme and not phoneme.startswith(PAUSE) and end > start:
            out.append((phoneme, offset + start / 1000, offset + end / 1000))
    return out


def _jobs(root: Path, utt_ids: list[str]) -> dict[int, list[tuple[str, str, dict, int]]]:
    """Speaker -> [(utterance id, text, voice, seed)] exactly as synth.generate drew them."""
    params = json.loads((root / "corpus.json").read_text())["params"]
    voices = json.loads((root / "speakers.json").read_text())
    speaker = dict(line.split() for line in (root / "flickr_audio" / "wav2spk.txt").read_text().splitlines() if line)
    raw = {
        s["sentid"]: s["raw"]
        for img in json.loads((root / "dataset.json").read_text())["images"]
        for s in img["sentences"]
    }
    jobs: dict[int, list] = {}
    for uid in utt_ids:
        name, k = uid.rsplit("_", 1)  # scene_000123_4: image 123, caption 4
        sentid = int(name.rsplit("_", 1)[1]) * 5 + int(k)
        spk = int(speaker[f"{uid}.wav"])
        jobs.setdefault(spk, []).append((uid, raw[sentid], voices[spk], params["seed"] * 10_000_019 + sentid))
    return jobs


def _align_speaker(jobs: list[tuple[str, str, dict, int]]) -> dict[str, list[Segment]]:
    """Worker (a fresh process: eSpeak keeps voice state): one speaker's captions."""

    engine = Espeak(phoneme_events=True)
    out = {}
    for uid, text, voice, seed in jobs:
        raw = engine.synthesize(text, Voice(**voice), seed)
        events = engine.phonemes + [(PAUSE, math.ceil(1000 * len(raw) / engine.sample_rate))]
        out[uid] = segments(events, leading_silence(seed))
    return out


def alignments(
    root: str | Path, utt_ids: list[str], workers: int = 2, source: str = ""
) -> dict[str, list[Segment]] | None:
    """Phoneme segments of the given utterances: from the user's forced alignments (`source`,
    data.alignments), else recomputed for a built-in corpus; None for another corpus."""
    if source:
        return user_alignments(source, utt_ids)
    root = Path(root)
    if not is_builtin(root):
        return None
    cache = root / CACHE
    with exclusive(root.with_name(f".{root.name}.phonemes.lock"), f"phoneme alignments of {root.name}"):
        known = json.loads(cache.read_text()) if cache.exists() else {}
        todo = [u for u in utt_ids if u not in known]
        if todo:
            with fresh_process_pool(workers, ["vgs.data.alignments"]) as pool:  # eSpeak NG: a process per speaker
                for part in pool.imap_unordered(_align_speaker, list(_jobs(root, todo).values())):
                    known.update(part)
            tmp = cache.with_name(cache.name + ".tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(cache)
    return {u: [tuple(s) for s in known[u]] for u in utt_ids}


def frame_labels(segs: list[Segment], frame_times: np.ndarray) -> list[str | None]:
    """The phoneme at each time (a frame's centre), None in silence or between phonemes."""
    starts = np.array([s for _, s, _ in segs])
    out: list[str | None] = []
    for t in frame_times:
        k = int(np.searchsorted(starts, t, side="right")) - 1
        out.append(segs[k][0] if k >= 0 and segs[k][1] <= t < segs[k][2] else None)
    return out

"""The built-in spoken-scenes corpus, generated locally (no download).

Each image is a procedurally drawn scene of 3-5 objects (shape, colour, size, position) on a
textured background.  Each image gets five English captions from varied templates that
mention subsets of its objects (so several images fit most captions), a Japanese
translation of each caption, and speech synthesised with eSpeak NG by one of many speaker
voices (language variant, voice variant, rate, pitch) with added noise, resampled to 16 kHz.

The corpus is written in the Flickr8K Audio Caption Corpus layout, so the Flickr8K importer
reads it:  dataset.json (Karpathy style, with raw_jp), flickr_audio/wavs/*.wav,
flickr_audio/wav2capt.txt, flickr_audio/wav2spk.txt, Flicker8k_Dataset/*.jpg.

    python -m vgs.data.synth --out DIR --images 2500 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vgs.data.espeak import Espeak, Voice
from vgs.data.fresh_processes import fresh_process_pool
from vgs.data.scenes import N_TEMPLATES, Scene, caption, draw_scene, render
from vgs.log import get_logger, report_error
from vgs.progress import Progress

log = get_logger(__name__)

GENERATOR_VERSION = 2
SAMPLE_RATE = 16000


# Speaker voices: eSpeak NG language variants x voice variants, each with its own rate and pitch.
_LANGS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan"]
_VARIANTS = ["m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3"]


def make_speakers(n: int, seed: int) -> list[Voice]:
    rng = np.random.default_rng([seed, 7])
    combos = [(lang, var) for lang in _LANGS for var in _VARIANTS]
    picks = rng.permutation(len(combos))[:n]
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} distinct speakers, asked for {n}")
    return [
        Voice(
            f"{combos[i][0]}+{combos[i][1]}",
            rate=int(rng.integers(140, 200)),
            pitch=int(rng.integers(25, 75)),
            pitch_range=int(rng.integers(30, 80)),
        )
        for i in picks
    ]


# ---------------------------------------------------------------- captions


# ---------------------------------------------------------------- audio


def silence_pads(rng: np.random.Generator) -> np.ndarray:
    """Samples of leading and trailing silence (up to 250 ms each): add_noise's first draw, which
    the phoneme alignments (vgs.data.alignments) repeat to place the speech."""
    return rng.integers(0, int(0.25 * SAMPLE_RATE), size=2)


DEFAULT_SNR = (20.0, 40.0)  # dB: white noise of a clean recording


def add_noise(samples: np.ndarray, rng: np.random.Generator, snr: tuple[float, float] = DEFAULT_SNR) -> np.ndarray:
    """Random leading/trailing silence and white noise at an SNR drawn from `snr` (dB)."""
    x = samples.astype(np.float32) / 32768.0
    pad = silence_pads(rng)
    x = np.concatenate([np.zeros(pad[0], np.float32), x, np.zeros(pad[1], np.float32)])
    power = float(np.mean(x**2)) + 1e-10
    snr_db = rng.uniform(*snr)
    x = x + rng.normal(0, math.sqrt(power / 10 ** (snr_db / 10)), size=x.shape).astype(np.float32)
    return np.clip(x, -1, 1)


IMAGES_PER_TASK = 250


def _work(task: tuple[str, list]) -> tuple[str, list]:
    """Worker: one speaker's captions ("speech") or a chunk of images ("images")."""
    kind, jobs = task
    return kind, (_speak_speaker(jobs) if kind == "speech" else _draw_images(jobs))


def _draw_images(jobs: list[tuple[str, Scene, int, int]]) -> list[str]:
    """Render scenes to JPEG files (each with its own seeded noise: the same bytes in any worker)."""
    for path, scene, seed, i in jobs:
        if not os.path.exists(path):  # resumed generation: finished images were renamed into place
            tmp = path[: -len(".jpg")] + ".tmp.jpg"
            render(scene, np.random.default_rng([seed, 2, i])).save(tmp, quality=92)
            os.replace(tmp, path)
    return [p for p, *_ in jobs]


def _speak_speaker(jobs: list[tuple[str, str, Voice, int, tuple[float, float]]]) -> list[float]:
    """Worker: synthesise all captions of one speaker, each to a wav file; returns their durations.

    eSpeak NG keeps some voice attributes (breath, echo, stress lengths) from earlier voices
    in the same process, so each speaker gets a fresh process (maxtasksperchild=1): the audio
    then depends only on the speaker, the text and the seed, never on the worker count."""
    import soundfile as sf
    from scipy.signal import resample_poly

    engine = Espeak()
    durations = []
    for path, text, voice, seed, snr in jobs:
        if os.path.exists(path):  # resumed generation: finished files were renamed into place atomically
            durations.append(sf.info(path).duration)
            continue
        raw = engine.synthesize(text, voice, seed).astype(np.float32)
        g = math.gcd(SAMPLE_RATE, engine.sample_rate)
        audio = add_noise(
            resample_poly(raw, SAMPLE_RATE // g, engine.sample_rate // g), np.random.default_rng(seed), snr
        )
        tmp = path + ".tmp"
        sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
        durations.append(len(audio) / SAMPLE_RATE)
    return durations


# ---------------------------------------------------------------- corpus


def parse_snr(snr: str | tuple[float, float]) -> tuple[float, float]:
    """'0-20' or (0, 20) -> (0.0, 20.0): a dB range, low first; a ValueError naming it otherwise."""
    try:
        low, high = (float(v) for v in (snr.split("-", 1) if isinstance(snr, str) else snr))
    except (TypeError, ValueError):
        raise ValueError(f"SNR range must look like LOW-HIGH in dB (e.g. 20-40), got {snr!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"SNR range must be LOW-HIGH with LOW <= HIGH, got {snr!r}")
    return low, high


def split_sizes(images: int, val: int | None = None, test: int | None = None) -> tuple[int, int, int]:
    """(train, val, test) images; by default a tenth each for validation and test (2000/250/250 of
    2500: most images train, which is what a model from scratch needs most on a CPU budget)."""
    test = max(1, images // 10) if test is None else test
    val = max(1, images // 10) if val is None else val
    train = images - val - test
    if train < 1 or val < 1 or test < 1:
        raise ValueError(f"cannot split {images} images into train/val/test = {train}/{val}/{test}")
    return train, val, test


@dataclass
class CorpusPlan:
    """Everything a corpus holds, drawn from the seed before any audio or image is rendered."""

    records: list[dict]  # Karpathy-style image records with their sentences
    wav2capt: list[str]
    wav2spk: list[str]
    speech: dict[int, list]  # speaker -> (wav path, text, voice, seed, snr) to synthesise
    drawings: list[tuple[str, Scene, int, int]]  # (path, scene, seed, index) to render


def plan_corpus(
    partial: Path, images: int, split: list[int], voices: list, seed: int, snr: tuple[float, float]
) -> CorpusPlan:
    n_train, n_val, _ = split
    speakers = len(voices)
    rng = np.random.default_rng([seed, 1])
    plan = CorpusPlan([], [], [], {k: [] for k in range(speakers)}, [])
    for i in range(images):
        scene = draw_scene(rng)
        name = f"scene_{i:06d}"
        plan.drawings.append((str(partial / "Flicker8k_Dataset" / f"{name}.jpg"), scene, seed, i))
        split_name = "train" if i < n_train else "val" if i < n_train + n_val else "test"
        sentences = []
        for k, template in enumerate(rng.permutation(N_TEMPLATES)):
            en, jp = caption(scene, int(template), rng)
            spk = int(rng.integers(0, speakers))
            wav = f"{name}_{k}.wav"
            sentid = i * 5 + k
            sentences.append({"raw": en, "tokens": en.split(), "raw_jp": jp, "imgid": i, "sentid": sentid})
            plan.speech[spk].append(
                (str(partial / "flickr_audio" / "wavs" / wav), en, voices[spk], seed * 10_000_019 + sentid, snr)
            )
            plan.wav2capt.append(f"{wav} {name}.jpg #{k}")
            plan.wav2spk.append(f"{wav} {spk}")
        plan.records.append(
            {
                "filename": f"{name}.jpg",
                "imgid": i,
                "split": split_name,
                "sentids": [s["sentid"] for s in sentences],
                "sentences": sentences,
                "scene": {"background": scene.background, "objects": [asdict(o) for o in scene.objects]},
            }
        )
    return plan


def synthesise(plan: CorpusPlan, total: int, workers: int) -> float:
    """Synthesise the speech and draw the images in worker processes; seconds of speech made."""
    progress = Progress("synthesising speech and drawing images", total=total, unit="item")
    seconds = 0.0
    # eSpeak NG keeps voice state for the life of a process, so every speaker gets a fresh one,
    # forked from a server that has imported numpy, scipy and soundfile (never eSpeak)
    tasks = [("speech", j) for j in plan.speech.values() if j]
    drawings = plan.drawings
    tasks += [("images", drawings[a : a + IMAGES_PER_TASK]) for a in range(0, len(drawings), IMAGES_PER_TASK)]
    with fresh_process_pool(workers, ["vgs.data.synth", "scipy.signal", "soundfile", "PIL.Image"]) as pool:
        for kind, done in pool.imap_unordered(_work, tasks):
            if kind == "speech":
                seconds += sum(done)
            progress.update(len(done))
    progress.close()
    return seconds


def generate(
    out: str | Path,
    images: int = 2500,
    seed: int = 0,
    speakers: int = 40,
    val_images: int | None = None,
    test_images: int | None = None,
    workers: int | None = None,
    snr: str | tuple[float, float] = DEFAULT_SNR,
) -> Path:
    """Write the corpus to `out` (atomically: built in out.partial, renamed when complete).

    An existing complete corpus with the same parameters is reused; an interrupted one
    continues where it stopped.  `snr`: the range (dB) of each recording's white-noise level
    (a (low, high) pair or "LOW-HIGH"; a ValueError names a bad one)."""
    out = Path(out).resolve()
    params = {
        "generator_version": GENERATOR_VERSION,
        "images": images,
        "seed": seed,
        "speakers": speakers,
        "split": list(split_sizes(images, val_images, test_images)),
    }
    snr = parse_snr(snr)
    if snr != DEFAULT_SNR:  # recorded only when set, so corpora made before the option still match
        params["snr_db"] = list(snr)
    manifest = out / "corpus.json"
    if manifest.exists():
        existing = json.loads(manifest.read_text())
        if existing.get("params") == params:
            log.info(f"built-in corpus already at {out}")
            return out
        raise FileExistsError(
            f"{out} holds a different corpus ({existing.get('params')}); choose another --out or remove it"
        )
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not a vgs built-in corpus; choose another --out")
    partial = out.with_name(out.name + ".partial")
    (partial / "flickr_audio" / "wavs").mkdir(parents=True, exist_ok=True)
    (partial / "Flicker8k_Dataset").mkdir(exist_ok=True)
    start = time.time()

    voices = make_speakers(speakers, seed)
    plan = plan_corpus(partial, images, params["split"], voices, seed, snr)
    workers = workers or os.cpu_count() or 1
    n_captions = sum(len(j) for j in plan.speech.values())
    seconds = synthesise(plan, n_captions + images, workers)
    records, wav2capt, wav2spk = plan.records, plan.wav2capt, plan.wav2spk
    (partial / "flickr_audio" / "wav2capt.txt").write_text("\n".join(wav2capt) + "\n")
    (partial / "flickr_audio" / "wav2spk.txt").write_text("\n".join(wav2spk) + "\n")
    (partial / "dataset.json").write_text(json.dumps({"dataset": "vgs-builtin", "images": records}))
    (partial / "speakers.json").write_text(json.dumps([asdict(v) for v in voices], indent=1))
    stats = {
        "captions": n_captions,
        "audio_hours": round(seconds / 3600, 3),
        "generation_seconds": round(time.time() - start, 1),
        "workers": workers,
    }
    (partial / "corpus.json").write_text(json.dumps({"params": params, "stats": stats}, indent=1))
    if out.exists():
        shutil.rmtree(out)  # empty folder (checked above)
    os.replace(partial, out)
    log.info(
        f"built-in corpus: {images} images, {n_captions} spoken captions "
        f"({stats['audio_hours']} h of speech), split {params['split']} (train/val/test), "
        f"{speakers} speakers, in {stats['generation_seconds']} s with {workers} workers -> {out}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.data.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (Flickr8K Audio layout)")
    p.add_argument("--images", type=int, default=2500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speakers", type=int, default=40)
    p.add_argument("--val-images", type=int, default=None, help="default: a tenth of the images")
    p.add_argument(
        "--test-images",
        type=int,
        default=None,
        help="default: a tenth of the images (1000: the 1000-image test set of the three papers)",
    )
    p.add_argument("--workers", type=int, default=None, help="default: all cores")
    default_snr = "{:g}-{:g}".format(*DEFAULT_SNR)
    p.add_argument(
        "--snr",
        default=default_snr,
        help="white-noise level of each recording, drawn from LOW-HIGH "
        f"dB (default {default_snr}; e.g. 0-20 for noisy speech)",
    )
    a = p.parse_args(argv)
    try:
        generate(a.out, a.images, a.seed, a.speakers, a.val_images, a.test_images, a.workers, a.snr)
    except (ValueError, FileExistsError) as e:
        return report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())

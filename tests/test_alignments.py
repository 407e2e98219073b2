"""Phoneme alignments of the built-in corpus and Chrupała 2019's phoneme-decoding probe (Table 5)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from vgs.data.alignments import _jobs, alignments, frame_labels, leading_silence, segments

# In a fresh process (eSpeak keeps voice state, as the generator knows): the caption's recording
# made again from what _jobs says the generator used, sample for sample.
RESYNTH = """
import json, math, sys
import numpy as np, soundfile as sf
from scipy.signal import resample_poly
from vgs.data.espeak import Espeak, Voice
from vgs.data.synth import SAMPLE_RATE, add_noise
text, voice, seed, path = json.loads(sys.argv[1])
engine = Espeak()
raw = engine.synthesize(text, Voice(**voice), seed).astype(np.float32)
g = math.gcd(SAMPLE_RATE, engine.sample_rate)
audio = add_noise(resample_poly(raw, SAMPLE_RATE // g, engine.sample_rate // g), np.random.default_rng(seed))
stored = sf.read(path, dtype="float32")[0]
sf.write(path + ".again.wav", audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
print(json.dumps(bool(np.array_equal(sf.read(path + ".again.wav", dtype="float32")[0], stored))))
"""


def test_alignments_come_from_the_generators_own_synthesis(tiny_corpus, tmp_path):
    uids = ["scene_000000_0", "scene_000007_3", "scene_000123_4"]
    jobs = {uid: (text, voice, seed) for spk in _jobs(tiny_corpus, uids).values() for uid, text, voice, seed in spk}
    for uid in uids[:2]:
        copy = tmp_path / f"{uid}.wav"
        copy.write_bytes((tiny_corpus / "flickr_audio" / "wavs" / f"{uid}.wav").read_bytes())
        text, voice, seed = jobs[uid]
        out = subprocess.run(
            [sys.executable, "-c", RESYNTH, json.dumps([text, voice, seed, str(copy)])],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout) is True, f"{uid}: the recording made again differs from the corpus's"
    found = alignments(tiny_corpus, uids)
    assert (tiny_corpus / "phonemes.json").exists() and set(
        json.loads((tiny_corpus / "phonemes.json").read_text())
    ) >= set(uids)
    for uid in uids:
        segs = found[uid]
        duration = sf.info(str(tiny_corpus / "flickr_audio" / "wavs" / f"{uid}.wav")).duration
        text, _, seed = jobs[uid]
        assert len(segs) >= len(text.replace(" ", "")) // 2  # about one phoneme per letter or two
        assert segs[0][1] >= leading_silence(seed) - 1e-9 and segs[-1][2] <= duration + 1e-9
        assert all(a[2] <= b[1] + 1e-9 for a, b in zip(segs, segs[1:]))  # in order, not overlapping
        assert not any(p.startswith(("_", "'")) for p, _, _ in segs)
    assert alignments(tiny_corpus, uids[:1]) == {uids[0]: found[uids[0]]}  # from the cache


def test_other_corpora_have_no_alignments(tmp_path):
    assert alignments(tmp_path, ["a_0"]) is None


def test_segments_and_frame_labels():
    segs = segments([("a#", 0), ("'E", 100), ("_:", 200), ("d", 250), ("_", 300)], offset=0.5)
    assert segs == [("a#", 0.5, 0.6), ("E", 0.6, 0.7), ("d", 0.75, 0.8)]
    times = np.array([0.1, 0.55, 0.65, 0.72, 0.78, 0.9])
    assert frame_labels(segs, times) == [None, "a#", "E", None, "d", None]


def test_state_times_follow_the_conv_front_end():
    from vgs.analysis import state_times
    from vgs.config import apply_overrides, base_config

    cfg = apply_overrides(
        base_config("cpu-tiny"),
        {"data.features": "mortazavi", "model.speech.conv_kernel": 6, "model.speech.conv_stride": 2},
    )
    hop = 200 / 16000  # mortazavi: 12.5 ms
    np.testing.assert_allclose(state_times(3, cfg), np.array([2.5, 4.5, 6.5]) * hop)


def _gradient_descent_probe(x, y, xt, yt, l2, steps=20000, lr=0.5):
    """The slow obvious reference: full-batch gradient descent on the same objective."""
    names = sorted(set(y))
    mean, std = x.mean(0), x.std(0, ddof=1)
    x, xt = (x - mean) / std, (xt - mean) / std
    onehot = np.eye(len(names))[[names.index(v) for v in y]]
    w, b = np.zeros((x.shape[1], len(names))), np.zeros(len(names))
    for _ in range(steps):
        z = x @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(x)
        w -= lr * (x.T @ g + 2 * l2 * w)
        b -= lr * g.sum(0)
    return np.mean([names[k] == v for k, v in zip((xt @ w + b).argmax(1), yt)])


def test_logistic_probe_equals_gradient_descent():
    from vgs.metrics import logistic_probe

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5))
    labels = rng.integers(0, 3, size=240)
    x = centres[labels] + rng.normal(size=(240, 5)) * 1.2
    names = np.array(["p", "t", "k"])[labels].tolist()
    ours = logistic_probe(x[:160], names[:160], x[160:], names[160:], l2=1e-2, steps=200)
    assert ours == pytest.approx(_gradient_descent_probe(x[:160], names[:160], x[160:], names[160:], 1e-2), abs=1 / 80)
    assert 0.5 < ours < 1.0
    assert logistic_probe(x[:160], names[:160], x[160:], ["z"] * 80) == 0.0  # unseen labels are errors


def write_textgrid(path, segs, end: float) -> None:
    """A Montreal Forced Aligner TextGrid (long text format) whose phones tier holds `segs`, with
    silences between them as MFA writes them."""
    intervals, t = [], 0.0
    for phone, start, stop in segs:
        if start > t:
            intervals.append((t, start, "sil"))
        intervals.append((start, stop, phone))
        t = stop
    intervals.append((t, end, ""))
    body = "".join(
        f'        intervals [{k}]:\n            xmin = {a!r}\n            xmax = {b!r}\n            text = "{x}"\n'
        for k, (a, b, x) in enumerate(intervals, 1)
    )
    path.write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {end}\ntiers? <exists>\nsize = 2\n'
        "item []:\n"
        '    item [1]:\n        class = "IntervalTier"\n        name = "words"\n        xmin = 0\n'
        f"        xmax = {end}\n        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n"
        f'            xmax = {end}\n            text = "a"\n'
        '    item [2]:\n        class = "IntervalTier"\n        name = "phones"\n        xmin = 0\n'
        f"        xmax = {end}\n        intervals: size = {len(intervals)}\n" + body
    )


def test_forced_alignments_from_mfa_and_gentle_read_as_the_phonemes_they_time(tmp_path):
    from vgs.data.forced_alignments import read_gentle, read_textgrid, user_alignments
    from vgs.data.records import CorpusError

    segs = [("DH", 0.12, 0.2), ("AH0", 0.2, 0.26), ("K", 0.4, 0.5)]
    write_textgrid(tmp_path / "utt_a.TextGrid", segs, 0.8)
    assert read_textgrid(tmp_path / "utt_a.TextGrid") == [("DH", 0.12, 0.2), ("AH", 0.2, 0.26), ("K", 0.4, 0.5)]
    gentle = {
        "transcript": "the cat",
        "words": [
            {"case": "success", "word": "the", "start": 0.12, "end": 0.26,
             "phones": [{"phone": "dh_B", "duration": 0.08}, {"phone": "ah_E", "duration": 0.06}]},
            {"case": "not-found-in-audio", "word": "cat"},
        ],
    }  # fmt: skip
    (tmp_path / "utt_b.json").write_text(json.dumps(gentle))
    got = read_gentle(tmp_path / "utt_b.json")
    assert (
        [p for p, _, _ in got] == ["dh", "ah"] and got[1][1] == pytest.approx(0.2) and got[1][2] == pytest.approx(0.26)
    )
    found = user_alignments(tmp_path, ["utt_a", "utt_b"])  # one folder, both kinds
    assert set(found) == {"utt_a", "utt_b"}
    (tmp_path / "table.json").write_text(json.dumps({"utt_a": [["DH", 0.12, 0.2]], "utt_b": []}))
    assert user_alignments(tmp_path / "table.json", ["utt_a"]) == {"utt_a": [("DH", 0.12, 0.2)]}
    with pytest.raises(CorpusError, match="no alignment for 1 of the 2 utterances probed .*utt_c"):
        user_alignments(tmp_path, ["utt_a", "utt_c"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(CorpusError, match="not a Gentle alignment"):
        read_gentle(tmp_path / "bad.json")
    with pytest.raises(CorpusError, match="does not exist"):
        user_alignments(tmp_path / "nowhere", ["utt_a"])


def test_the_phoneme_probe_reads_a_forced_aligners_timings_as_the_built_in_ones(tiny_corpus, tmp_path):
    """Chrupała 2019 Table 5 on a corpus with forced alignments: the built-in corpus's own timings
    written as MFA TextGrids give the probe exactly the accuracies the built-in path gives; a
    data.alignments that does not exist is refused before any training."""
    from conftest import tiny_config

    from vgs.config import ConfigError
    from vgs.data.flickr8k import read_flickr8k
    from vgs.train import fit

    val = [u.id for u in read_flickr8k(tiny_corpus).utterances if u.split == "val"]
    timings = alignments(tiny_corpus, val)
    grids = tmp_path / "mfa" / "speaker1"  # MFA writes a folder per speaker
    grids.mkdir(parents=True)
    for uid, segs in timings.items():
        write_textgrid(grids / f"{uid}.TextGrid", segs, segs[-1][2] + 0.3 if segs else 1.0)
    settings = {"train.analysis": True, "train.test_at_end": False, "train.epochs": 1, "train.phoneme_utterances": 60}
    scores = {}
    for name, source in (("built-in", ""), ("textgrid", str(tmp_path / "mfa"))):
        cfg = tiny_config(tiny_corpus, **settings, **{"data.alignments": source, "data.store": str(tmp_path / "s")})
        summary = fit(cfg, out_dir=tmp_path / name)
        scores[name] = [summary[f"analysis_phoneme_acc{k}"] for k in ("_mfcc", "_random", "")]
    assert scores["textgrid"] == scores["built-in"], scores
    with pytest.raises(ConfigError, match="data.alignments: .*nowhere does not exist"):
        fit(
            tiny_config(tiny_corpus, **settings, **{"data.alignments": str(tmp_path / "nowhere")}),
            out_dir=tmp_path / "x",
        )

import hashlib
import json

import numpy as np
import soundfile as sf

from vgs.data.flickr8k import read_flickr8k
from vgs.data.synth import generate, make_speakers


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "corpus.json":  # corpus.json records timings
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_corpus_other_seed_other_corpus(tmp_path):
    a = generate(tmp_path / "a", images=12, seed=11, speakers=20, val_images=3, test_images=3)
    b = generate(tmp_path / "b", images=12, seed=11, speakers=20, val_images=3, test_images=3)
    c = generate(tmp_path / "c", images=12, seed=12, speakers=20, val_images=3, test_images=3)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_corpus_is_real_speech_in_the_flickr8k_layout(tiny_corpus):
    corpus = read_flickr8k(tiny_corpus)
    assert len(corpus.utterances) == 300 * 5
    assert {u.split for u in corpus.utterances} == {"train", "val", "test"}
    assert len(corpus.images("test")) == 20 and len(corpus.images("val")) == 40
    assert len({u.speaker for u in corpus.utterances}) >= 20
    assert all(u.translation for u in corpus.utterances)
    audio, rate = sf.read(corpus.utterances[0].audio)
    assert rate == 16000 and 0.5 < len(audio) / rate < 10
    # speech, not silence or noise alone: the loudest 100 ms is far above the quietest
    frames = np.abs(audio[: len(audio) // 1600 * 1600]).reshape(-1, 1600).mean(1)
    assert frames.max() > 10 * frames.min()
    meta = json.loads((tiny_corpus / "dataset.json").read_text())
    scene = meta["images"][0]["scene"]
    assert len(scene["objects"]) >= 3


def test_speakers_are_distinct_voices():
    voices = make_speakers(40, seed=0)
    assert len({(v.name, v.rate, v.pitch) for v in voices}) == 40
    assert len({v.name for v in voices}) == 40


def test_existing_corpus_is_reused_and_a_different_one_refused(tmp_path):
    import pytest

    out = generate(tmp_path / "c", images=8, seed=1, speakers=20, val_images=2, test_images=2)
    before = (out / "dataset.json").stat().st_mtime_ns
    generate(tmp_path / "c", images=8, seed=1, speakers=20, val_images=2, test_images=2)
    assert (out / "dataset.json").stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="different corpus"):
        generate(tmp_path / "c", images=9, seed=1, speakers=20, val_images=2, test_images=2)


def test_a_lower_snr_adds_more_noise_to_the_same_speech_and_names_its_corpus(tmp_path):
    import dataclasses

    import pytest

    from vgs.config import ConfigError, DataConfig
    from vgs.data.prepare import builtin_corpus_dir
    from vgs.data.synth import add_noise, parse_snr, silence_pads

    speech = (np.sin(np.arange(16000) / 5.0) * 8000).astype(np.int16)
    clean = add_noise(speech, np.random.default_rng(0))
    noisy = add_noise(speech, np.random.default_rng(0), snr=(0.0, 0.0))
    assert clean.shape == noisy.shape  # the same silence pads: the same first draw
    signal = speech.astype(np.float32) / 32768.0
    start = silence_pads(np.random.default_rng(0))[0]

    def snr(x):  # of the speech span (the level is set over speech and pads: a little above nominal)
        added = x[start : start + len(signal)] - signal
        return 10 * np.log10(np.mean(signal**2) / np.mean(added**2))

    assert 20 < snr(clean) < 42 and 0.0 < snr(noisy) < 2.0
    assert parse_snr("0-20") == (0.0, 20.0) and parse_snr((5, 5)) == (5.0, 5.0)
    for bad in ("20", "30-10", "a-b"):
        with pytest.raises(ValueError, match="SNR range"):
            parse_snr(bad)
    default = builtin_corpus_dir(DataConfig())
    assert "snr" not in default.name  # corpora made before the option keep their folder
    assert builtin_corpus_dir(DataConfig(builtin_snr="0-20")).name == default.name + "-snr0-20"
    with pytest.raises(ConfigError, match="data.builtin_snr"):
        builtin_corpus_dir(dataclasses.replace(DataConfig(), builtin_snr="loud"))
    a = generate(tmp_path / "a", images=4, seed=1, speakers=20, val_images=1, test_images=1, snr=(0, 10))
    assert json.loads((a / "corpus.json").read_text())["params"]["snr_db"] == [0.0, 10.0]

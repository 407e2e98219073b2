"""data.speech_norm: MFCCs standardised with the corpus statistics or per utterance (CMVN)."""

import dataclasses
import math

import numpy as np
import pytest

from vgs.config import ConfigError, apply_overrides, base_config, check_consistent
from vgs.data.batching import PairSplit
from vgs.data.prepare import prepare


def slow_cmvn(frames: np.ndarray) -> np.ndarray:
    out = np.empty_like(frames, dtype=np.float64)
    for d in range(frames.shape[1]):
        column = [float(x) for x in frames[:, d]]
        mean = sum(column) / len(column)
        sd = math.sqrt(sum((x - mean) ** 2 for x in column) / len(column))
        out[:, d] = [(x - mean) / sd for x in column]
    return out


def test_per_utterance_normalisation_equals_the_slow_reference_and_reaches_batches(tiny_corpus):
    cfg = apply_overrides(base_config("cpu-tiny"), {"data.root": str(tiny_corpus)})
    data = prepare(cfg.data)
    uid = data.speech.ids[0]
    np.testing.assert_allclose(
        data.speech.normalised(uid, per_utterance=True), slow_cmvn(data.speech.frames(uid)), rtol=1e-4, atol=1e-4
    )
    corpus_wide = data.speech.normalised(uid)
    np.testing.assert_allclose(corpus_wide, (data.speech.frames(uid) - data.speech.mean) / data.speech.std, rtol=1e-6)

    by_utterance = PairSplit(dataclasses.replace(data, speech_norm="utterance"), "train")
    speech, lengths = by_utterance.speech_batch(np.array([0, 1]))
    first = by_utterance.utt_ids[0]
    np.testing.assert_allclose(speech[0, : lengths[0]].numpy(), data.speech.normalised(first, True), rtol=1e-6)
    plain, _ = PairSplit(data, "train").speech_batch(np.array([0, 1]))
    assert not np.allclose(plain.numpy(), speech.numpy())


def test_unknown_normalisation_is_refused():
    with pytest.raises(ConfigError, match="data.speech_norm must be corpus or utterance"):
        check_consistent(apply_overrides(base_config("cpu-small"), {"data.speech_norm": "speaker"}))


def test_seed_004_features_are_the_static_part_of_seed_003s(tiny_corpus):
    from vgs.data.featurisers import load_audio, mfcc
    from vgs.data.flickr8k import read_flickr8k

    wav = load_audio(str(read_flickr8k(tiny_corpus).utterances[0].audio))
    full, static = mfcc(wav, "chrupala"), mfcc(wav, "chrupala13")
    assert full.shape[1] == 39 and static.shape == (full.shape[0], 13)
    np.testing.assert_array_equal(static, full[:, :13])  # c1..c12 + log energy, without the deltas

import numpy as np
import pytest

from vgs.metrics import retrieval, retrieval_ranks


def brute_force(speech, images, owner):
    """The README's protocol, one query at a time."""
    s2i = []
    for c in range(len(speech)):
        scores = [float(speech[c] @ images[i]) for i in range(len(images))]
        s2i.append(1 + sum(s > scores[owner[c]] for s in scores))
    i2s = []
    for i in range(len(images)):
        scores = [float(images[i] @ speech[c]) for c in range(len(speech))]
        i2s.append(min(1 + sum(s > scores[c] for s in scores) for c in range(len(speech)) if owner[c] == i))
    return np.array(s2i), np.array(i2s)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n_images,per_image,dim", [(7, 1, 4), (12, 5, 6), (30, 5, 3)])
def test_ranks_match_brute_force(n_images, per_image, dim):
    rng = np.random.default_rng(n_images)
    images = unit(rng.normal(size=(n_images, dim)).astype(np.float32))
    owner = np.repeat(np.arange(n_images), per_image)
    speech = unit(images[owner] + rng.normal(scale=0.8, size=(len(owner), dim)).astype(np.float32))
    got = retrieval_ranks(speech, images, owner, chunk=5)  # small chunks exercise the chunking
    want = brute_force(speech, images, owner)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_ties_count_only_strictly_higher_scores():
    images = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)  # images 0 and 1 identical
    speech = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    owner = np.array([0, 1, 2])
    s2i, i2s = retrieval_ranks(speech, images, owner)
    assert s2i.tolist() == [1, 1, 1]
    assert i2s.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(s2i, brute_force(speech, images, owner)[0])


def test_summary_keys_and_values():
    images = np.eye(4, dtype=np.float32)
    owner = np.array([0, 0, 1, 2, 3, 3])
    speech = images[[0, 1, 1, 2, 0, 3]]  # caption 1 (image 0) and caption 4 (image 3) point elsewhere
    m = retrieval(speech, images, owner)
    assert set(m) == {"s2i_r1", "s2i_r5", "s2i_r10", "s2i_medr", "i2s_r1", "i2s_r5", "i2s_r10", "i2s_medr"}
    assert m["s2i_r1"] == pytest.approx(4 / 6)
    assert m["s2i_r10"] == 1.0
    assert m["i2s_r1"] == 1.0  # every image has at least one caption ranked first
    assert m["s2i_medr"] == 1.0


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="shape mismatch"):
        retrieval(np.zeros((3, 4)), np.zeros((2, 5)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="outside"):
        retrieval(np.zeros((2, 4)), np.zeros((2, 4)), np.array([0, 2]))


# ------------------------------------------------------------------ WER / BLEU


def test_wer_equals_jiwer_on_random_strings():
    import random

    import jiwer

    from vgs.metrics import wer

    rng = random.Random(0)
    vocab = ["a", "dog", "red", "cat", "runs", "the", "on", "grass"]
    refs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(60)]
    hyps = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 9))) for _ in range(60)]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert wer(refs, refs) == 0.0
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(2 / 4)


def test_edit_distance_against_brute_force_enumeration():
    from itertools import product

    from vgs.metrics import edit_distance

    def slow(a, b):  # obvious recursion
        if not a or not b:
            return len(a) + len(b)
        return min(slow(a[1:], b) + 1, slow(a, b[1:]) + 1, slow(a[1:], b[1:]) + (a[0] != b[0]))

    for a, b in product(["", "a", "ab", "ba", "abc", "cab"], repeat=2):
        assert edit_distance(list(a), list(b)) == slow(a, b)


def test_bleu_is_sacrebleu_as_a_fraction_and_char_level_for_japanese():
    import sacrebleu

    from vgs.metrics import bleu

    refs = ["a dog runs on the grass .", "two cats sit on a red mat ."]
    hyps = ["a dog runs on grass .", "two cats sit on the mat ."]
    assert bleu(refs, hyps) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score / 100)
    assert bleu(refs, refs) == pytest.approx(1.0)
    jp_ref, jp_hyp = ["雪の中で2匹の犬が遊ぶ。"], ["雪の中で犬が遊ぶ。"]
    assert 0 < bleu(jp_ref, jp_hyp, tokenize="char") < 1
    assert bleu(jp_ref, jp_hyp) < bleu(jp_ref, jp_hyp, tokenize="char")  # one "word" without char tokens


# ------------------------------------------------------------------ analysis metrics


def test_text_similarity_and_rsa_against_slow_references():
    from vgs.metrics import rsa, text_similarity

    texts = ["a red dog", "a red cat", "two cats", "a dog", ""]
    sim = text_similarity(texts)

    def lev(a, b):
        if not a or not b:
            return len(a) + len(b)
        return min(lev(a[1:], b) + 1, lev(a, b[1:]) + 1, lev(a[1:], b[1:]) + (a[0] != b[0]))

    for i, a in enumerate(texts):
        for j, b in enumerate(texts):
            if i != j:
                assert sim[i, j] == pytest.approx(1 - lev(a, b) / max(len(a), len(b), 1))
    rng = np.random.default_rng(0)
    other = rng.normal(size=sim.shape)
    other = other + other.T
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    a = np.array([sim[i, j] for i, j in pairs])
    b = np.array([other[i, j] for i, j in pairs])
    expected = ((a - a.mean()) * (b - b.mean())).sum() / np.sqrt(
        ((a - a.mean()) ** 2).sum() * ((b - b.mean()) ** 2).sum()
    )
    assert rsa(sim, other) == pytest.approx(expected)
    assert rsa(sim, sim) == pytest.approx(1.0)


def test_speaker_probe_finds_speaker_information_only_where_it_is():
    from vgs.metrics import speaker_probe

    rng = np.random.default_rng(1)
    speakers = [f"s{i % 4}" for i in range(120)]
    centres = rng.normal(size=(4, 8)) * 3
    coded = np.stack([centres[int(s[1])] for s in speakers]) + rng.normal(size=(120, 8))
    noise = rng.normal(size=(120, 8))
    assert speaker_probe(coded, speakers) > 0.9
    assert speaker_probe(noise, speakers) < 0.5  # chance is 0.25


@pytest.mark.parametrize("candidates,k,own", [(40, 10, 1), (100, 10, 1), (500, 10, 5), (12, 5, 3), (5, 10, 2)])
def test_chance_hit_rate_counts_random_orders(candidates, k, own):
    from math import comb

    from vgs.metrics import chance_hit_rate

    want = 1 - comb(candidates - own, k) / comb(candidates, k) if k <= candidates else 1.0
    assert chance_hit_rate(candidates, k, own) == pytest.approx(want, rel=1e-12)
    rng = np.random.default_rng(0)  # and by shuffling: the own matches are the first `own` of each order
    orders = rng.random((20000, candidates)).argsort(1)
    simulated = np.mean((orders[:, :k] < own).any(1))
    assert abs(simulated - want) < 4 * np.sqrt(want * (1 - want) / 20000) + 1e-9


@pytest.mark.parametrize("units,rate", [(40, 0.25), (100, 0.1), (100, 1 - 0.9**10)])
def test_chance_recall_bound_is_the_first_count_past_alpha(units, rate):
    from math import comb

    from vgs.metrics import chance_recall_bound

    def tail(n):  # P(at least n hits of `units`), summed term by term
        return sum(comb(units, j) * rate**j * (1 - rate) ** (units - j) for j in range(n, units + 1))

    bound = chance_recall_bound(units, rate, alpha=1e-3)
    count = round(bound * units)
    assert tail(count) < 1e-3 <= tail(count - 1)

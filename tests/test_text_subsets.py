import pytest

from vgs.data.records import Corpus, Utterance
from vgs.data.text_subsets import FLICKR8K_HOURS, reduced_english, scaled_hours, text_subset


def utts(n):
    return [
        Utterance(f"u{i}", f"/a/u{i}.wav", f"i{i // 5}.jpg", "s", f"caption {i}", "訳" if i % 3 else None, "train")
        for i in range(n)
    ]


def test_subsets_are_nested_sized_by_hours_and_seed_deterministic():
    us = utts(400)
    seconds = {u.id: 2.0 + (i % 7) for i, u in enumerate(us)}  # 2-8 s each
    sizes = [0.1, 0.05, 0.01]  # hours
    subsets = [text_subset(us, seconds, seed=3, hours=h) for h in sizes]
    assert subsets[0] > subsets[1] > subsets[2]
    for h, s in zip(sizes, subsets):
        got = sum(seconds[u] for u in s)
        assert h * 3600 <= got < h * 3600 + 8.0  # the shortest prefix reaching the amount
    assert text_subset(us, seconds, seed=3, hours=0.05) == subsets[1]
    assert text_subset(us, seconds, seed=4, hours=0.05) != subsets[1]


def test_fraction_and_bad_requests():
    us = utts(100)
    seconds = {u.id: 3.0 for u in us}
    assert len(text_subset(us, seconds, fraction=0.25)) == 25
    assert len(text_subset(us, seconds, fraction=1.0)) == 100
    with pytest.raises(ValueError, match="exactly one"):
        text_subset(us, seconds)
    with pytest.raises(ValueError, match="the split has"):
        text_subset(us, seconds, hours=1.0)
    with pytest.raises(ValueError, match="no duration"):
        text_subset(us, {}, fraction=0.5)


def test_scaled_amounts_and_reduced_english():
    assert scaled_hours(34.0) == pytest.approx(FLICKR8K_HOURS)
    assert scaled_hours(3.4)[0] == pytest.approx(3.4) and scaled_hours(3.4)[-1] == pytest.approx(8 / 600)
    corpus = Corpus("c", None, None, utts(9))
    assert reduced_english(corpus) == {"u1", "u2", "u4", "u5", "u7", "u8"}

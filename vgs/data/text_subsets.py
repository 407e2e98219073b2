"""Which captions keep their text: textual downsampling and the reduced-English condition
(Higy et al. 2020 §4.4 and Tables 9-10).  Speech and images stay fixed; only the transcription (or
translation) of captions outside the subset is hidden from text-supervised objectives.

Subsets are nested and seed-deterministic: the training captions are put in one random order
(by seed) and a subset is the shortest prefix of that order with at least the asked amount of
speech, so a smaller subset is always inside a larger one.
"""

from __future__ import annotations

import numpy as np

from vgs.data.records import Corpus, Utterance

# Higy et al. 2020's amounts of transcribed speech for Flickr8K (34 h in all).
FLICKR8K_HOURS = (34.0, 11.3, 3.8, 1.3, 25 / 60, 8 / 60)
FLICKR8K_TOTAL_HOURS = 34.0


def text_subset(
    utterances: list[Utterance],
    seconds: dict[str, float],
    seed: int = 0,
    hours: float | None = None,
    fraction: float | None = None,
) -> set[str]:
    """Ids of the captions that keep their text: `hours` of speech, or a `fraction` of the total."""
    if (hours is None) == (fraction is None):
        raise ValueError("give exactly one of hours or fraction")
    missing = [u.id for u in utterances if u.id not in seconds]
    if missing:
        raise ValueError(f"no duration for {len(missing)} utterance(s), e.g. '{missing[0]}'")
    order = [utterances[i].id for i in np.random.default_rng([seed, 4004]).permutation(len(utterances))]
    total = sum(seconds[u] for u in order)
    target = total * fraction if fraction is not None else float(hours or 0.0) * 3600.0
    if not 0 <= target <= total + 1e-6:
        raise ValueError(f"asked for {target / 3600:.2f} h of text but the split has {total / 3600:.2f} h")
    kept, acc = [], 0.0
    for uid in order:
        if acc >= target - 1e-9:
            break
        kept.append(uid)
        acc += seconds[uid]
    return set(kept)


def scaled_hours(corpus_hours: float) -> tuple[float, ...]:
    """Higy et al. 2020's Flickr8K amounts scaled to a corpus with `corpus_hours` of training speech."""
    return tuple(h * corpus_hours / FLICKR8K_TOTAL_HOURS for h in FLICKR8K_HOURS)


def reduced_english(corpus: Corpus) -> set[str]:
    """Higy et al. 2020's "reduced English" dataset: the captions that have a translation."""
    return {u.id for u in corpus.utterances if u.translation}

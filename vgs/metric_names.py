"""The one vocabulary of metric names.  Tasks (vgs.tasks) name what they measure with these
words; the search-space check, the sweep table, the driver's progress line, MLflow and the
reports all derive their lists from here instead of spelling names out.

A name is <split prefix><base>: `val_s2i_r10` = validation, speech->image, recall at 10.
"""

from __future__ import annotations

# Retrieval directions: query -> candidates.  i2s / i2t are the reverse of s2i / t2i.
DIRECTIONS = {
    "s2i": "speech -> image",
    "i2s": "image -> speech",
    "t2i": "text -> image",
    "i2t": "image -> text",
    "s2t": "speech -> text",
}
REVERSE = {"s2i": "i2s", "t2i": "i2t"}
RANKING = ("r1", "r5", "r10", "medr")  # recall at 1/5/10 (higher is better), median rank (lower)
DECODING = ("wer", "cer", "bleu")  # ASR: WER and CER; SLT: BLEU and CER
OWN_QUERY_R10 = "r10"  # the family's own queries -> images, R@10: comparable across families
CHANCE = "images"  # candidate images of a query: R@k of a random ranking is k / images

# Split prefixes: every epoch's validation (val_), the best epoch's selection score (best_val_),
# every validation score at the selected epoch (sel_val_), the selected epoch decoded with the
# wide beam (beam_val_), the selected epoch on test (test_).
VAL, BEST_VAL, SELECTED, BEAM_VAL, TEST = "val_", "best_val_", "sel_val_", "beam_val_", "test_"
# the test split after every epoch (train.test_every_epoch; Mortazavi 2020 Fig. 2): never selects
EPOCH_TEST = "epoch_test_"
# a fixed sample of the training images after every epoch (train.eval_train_images): never selects
TRAIN_SAMPLE = "trainset_"
# longest first: sel_val_ before val_
SPLIT_PREFIXES = (BEST_VAL, SELECTED, BEAM_VAL, EPOCH_TEST, TRAIN_SAMPLE, VAL, TEST)
OTHER_PREFIXES = ("train_", "analysis_")  # training losses and batches; Chrupała 2019's analyses
TRACKED_PREFIXES = SPLIT_PREFIXES + OTHER_PREFIXES  # what becomes an MLflow metric


def ranking(direction: str) -> tuple[str, ...]:
    """'s2i' -> ('s2i_r1', 's2i_r5', 's2i_r10', 's2i_medr')."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown retrieval direction '{direction}'; known: {', '.join(DIRECTIONS)}")
    return tuple(f"{direction}_{m}" for m in RANKING)


def retrieval_names(query: str, reverse: bool = True) -> tuple[str, ...]:
    """The ranking names of a query direction and, where it has one and `reverse`, its reverse."""
    back = REVERSE.get(query) if reverse else None
    return ranking(query) + (ranking(back) if back else ())


def base_name(name: str) -> str:
    """The name without its split prefix: 'sel_val_s2i_r10' -> 's2i_r10'."""
    for prefix in SPLIT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def higher_is_better(name: str) -> bool:
    base = base_name(name)
    return not (base.endswith("medr") or base in ("wer", "cer"))


# Every validation metric some family can report: what a sweep may select on.
SELECTABLE = tuple(VAL + n for d in DIRECTIONS for n in ranking(d)) + tuple(
    VAL + n for n in (OWN_QUERY_R10,) + DECODING
)
# Columns of a sweep's summary table, in this order, where any trial reports them.
TABLE = ranking("s2i") + ranking("i2s") + ("t2i_r10", "i2t_r10", "s2t_r10") + DECODING
# Validation scores on a progress line, where a trial reports them.
PROGRESS = tuple(VAL + n for n in ("s2i_r10", "i2s_r10", "t2i_r10", "s2t_r10", "wer", "bleu", "cer"))


def selected_metrics(best: dict, metric: str) -> dict:
    """What a trial reports about its selected epoch: best_epoch, best_<metric> (the selection
    metric's best so far) and sel_val_* (every validation score at that epoch: image->speech R@10
    at the epoch chosen by speech->image is not image->speech's own best, so it is not named so)."""
    return {
        "best_epoch": best["epoch"],
        f"best_{metric}": best[metric],
        **{SELECTED + k[len(VAL) :]: v for k, v in best.items() if k.startswith(VAL)},
    }

"""The sweep's terminal tables: one row per trial, one per configuration, as padded markdown
(readable in a terminal and in the MLflow parent run's summary)."""

from __future__ import annotations

import statistics
from collections import Counter

from vgs import metric_names

TABLE_METRICS = metric_names.TABLE  # columns of the summary table, in this order, where any trial reports them
CONFIRM = "confirm"  # the confirmation phase: its Tune folder inside the sweep's, and its trials' phase
TABLE_TOP = 25  # rows listed at the end of a sweep; the rest are counted (all are in summary.json)
MORE_SEEDS = "more_seeds"  # seeds added to a finished sweep (--resume --add-seeds N): folder more_seeds_<last seed>


def format_config_table(configs: list[dict], metric: str, top: int = TABLE_TOP) -> str:
    """One row per configuration (best first): the first `top`, and a line counting the rest."""
    rows = [
        [
            ", ".join(f"{k}={v}" for k, v in c["config"].items()) or "(base)",
            str(len(c["values"])),
            f"{c['mean']:.3f}",
            "-" if c["sd"] is None else f"{c['sd']:.3f}",
            " ".join(f"{v:.3f}" for v in c["values"]),
            "-" if c.get("seconds") is None else f"{c['seconds'] / 60:.1f}",
        ]
        for c in configs[:top]
    ]
    table = markdown(["configuration", "seeds", f"mean {metric}", "sd", "per seed", "minutes per trial"], rows)
    return table + (f"\n... and {len(configs) - top} more configurations (summary.json)" if len(configs) > top else "")


def _metric_label(m: str) -> str:
    if m in ("wer", "cer", "bleu"):
        return f"val {m.upper()}"
    return f"val {m.replace('_', ' ').replace('r', 'R@', 1) if 'medr' not in m else m.replace('_', ' ')}"


def format_table(trials: list[dict], space_keys: list[str], multi_seed: bool = False, top: int = TABLE_TOP) -> str:
    """The trials (best first) as a markdown table: the first `top`, and a line counting the rest."""
    shown = [m for m in TABLE_METRICS if any(t.get(f"val_{m}") is not None for t in trials)] or list(TABLE_METRICS[:8])
    # decoded with model.asr.beam at the selected epoch (the per-epoch columns decode greedily)
    beamed = [m for m in ("wer", "bleu") if any(t.get(f"beam_val_{m}") is not None for t in trials)]
    cols = (
        ["trial"]
        + space_keys
        + (["train.seed"] if multi_seed else [])
        + ["epochs", "best ep"]
        + [_metric_label(m) for m in shown]
        + [f"val {m.upper()} (beam)" for m in beamed]
        + ["status"]
    )
    rows = []
    for t in trials[:top]:
        row = [str(t["trial_id"])] + [str(t["config"].get(k, "")) for k in space_keys]
        if multi_seed:
            row.append(str(t["config"].get("train.seed", "")))
        row += [str(t["epochs"]), str(t.get("best_epoch") or "-")]
        for m in shown:
            v = t.get(f"val_{m}")
            row.append("-" if v is None else (f"{v:.0f}" if m.endswith("medr") else f"{v:.3f}"))
        row += ["-" if t.get(f"beam_val_{m}") is None else f"{t[f'beam_val_{m}']:.3f}" for m in beamed]
        row.append(t["status"] + {CONFIRM: " (confirm)", MORE_SEEDS: " (added seed)"}.get(t.get("phase") or "", ""))
        rows.append(row)
    rest = trials[top:]
    if not rest:
        return markdown(cols, rows)
    counts = Counter(t["status"] for t in rest)
    tally = ", ".join(f"{n} {status}" for status, n in counts.most_common())
    return markdown(cols, rows) + (
        f"\n... and {len(rest)} more trials ({tally}); every trial is in summary.json and under the MLflow parent run"
    )


def markdown(cols: list[str], rows: list[list[str]]) -> str:
    """A markdown table padded to column widths (readable in a terminal too)."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def mean_sd(values: list[float]) -> str:
    """'0.412 ± 0.006 (n=2)'; a single seed has no sd to show, so none is printed."""
    if not values:
        return "-"
    m = statistics.fmean(values)
    if len(values) == 1:
        return f"{m:.3f} (n=1)"
    return f"{m:.3f} ± {statistics.stdev(values):.3f} (n={len(values)})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])

"""Higy et al. 2020's downsampling results (the `downsampling` sweep): Figure 3's table and curves,
with the speech-only baseline the paper draws beside them, and Tables 9-10 (the ASR and SLT
components' validation WER and BLEU per amount of text) with our numbers beside the paper's.

The speech-image baseline does not depend on text, so the sweep does not train it: it is read from
the latest `pipeline_vs_mtl` sweep in the same MLflow store (its speech-image/full and
speech-image/translations cells), and the report says where it came from or how to get it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from vgs.results.plots import TrialRun, _pyplot
from vgs.results.tables import markdown_table, mean_sd

BASELINE_SWEEP = "pipeline_vs_mtl"
# the baseline of each panel of Figure 3: English transcriptions (left), Japanese translations (right)
BASELINE_CELLS = {"speech-image/full": "transcriptions", "speech-image/translations": "translations"}
# Tables 9-10: the pipeline's recognizer (pipe-ind trains it on the downsampled text alone)
COMPONENTS = (("pipe-ind", "wer", "ASR WER", "Table 9"), ("pipe-ind/jp", "bleu", "SLT BLEU", "Table 10"))


@dataclass
class Baseline:
    """The speech-only baseline's scores per Figure 3 panel, and the sweep they come from."""

    sweep: str  # the pipeline_vs_mtl parent run's name
    scores: dict[str, list[float]]  # {"speech-image/full": [per seed], ...}


def speech_only_baseline(client, metric: str) -> Baseline | None:
    """The latest pipeline_vs_mtl sweep's speech-image cells in this MLflow store (None if it has none)."""
    exp = client.get_experiment_by_name(f"vgs-{BASELINE_SWEEP}")
    if exp is None:
        return None
    for parent in client.search_runs(
        [exp.experiment_id], filter_string="tags.`vgs.kind` = 'sweep'", order_by=["attributes.start_time DESC"]
    ):
        children = client.search_runs(
            [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=5000
        )
        scores: dict[str, list[float]] = {}
        for run in children:
            cell = run.data.params.get("variant.model")
            value = run.data.metrics.get(f"sel_{metric}")
            if cell in BASELINE_CELLS and value is not None and run.info.status != "FAILED":
                scores.setdefault(cell, []).append(value)
        if scores:
            return Baseline(parent.info.run_name or parent.info.run_id, scores)
    return None


def baseline_note(baseline: Baseline | None) -> str:
    if baseline is None:
        return (
            "No speech-only baseline: Figure 3's speech-image line comes from the pipeline_vs_mtl sweep in the "
            "same tracking store; run `python -m vgs.sweep pipeline_vs_mtl --pick "
            "variant.model=speech-image/full,speech-image/translations` with the same size and data, then report again."
        )
    return f"The speech-only baseline (speech-image, no text) is the {BASELINE_SWEEP} sweep {baseline.sweep}."


def decoding_scores(trials: list[TrialRun], model: str, stat: str) -> tuple[dict[float, list[float]], str]:
    """The recognizer's validation `stat` per text fraction, from one definition for the whole row:
    the selected epoch decoded with model.asr.beam (beam_val_*) where the runs have it, else the
    per-epoch decoding (model.asr.val_beam; the two beams are then equal or the run kept no beam_val_*).
    Returns ({fraction: values}, what the numbers are)."""
    runs = [t for t in trials if t.params.get("variant.model") == model]
    wide = any(f"beam_val_{stat}" in t.metrics for t in runs)
    key, beam_key = (f"beam_val_{stat}", "model.asr.beam") if wide else (f"sel_val_{stat}", "model.asr.val_beam")
    out: dict[float, list[float]] = {}
    for t in runs:
        if key in t.metrics:
            out.setdefault(float(t.params["data.text_fraction"]), []).append(t.metrics[key])
    beams = sorted({t.settings.get(beam_key, "?") for t in runs if key in t.metrics}, key=str)
    return out, f"{key}, beam {'/'.join(beams)}"


def text_fraction_table(paper: dict, keys: list[str], groups: dict[tuple, list[float]], trials, baseline) -> str:
    """Figure 3 as a table (a row per model, a column per text fraction; the speech-only baseline in
    every column), then Tables 9-10: our recognizers' validation WER/BLEU beside the paper's."""
    mi, fi = keys.index("variant.model"), keys.index("data.text_fraction")
    fractions = sorted({float(k[fi]) for k in groups}, reverse=True)
    models = list(dict.fromkeys(k[mi] for k in groups))
    rows = [
        [m] + [mean_sd(next((v for k, v in groups.items() if k[mi] == m and float(k[fi]) == f), [])) for f in fractions]
        for m in models
    ]
    if baseline is not None:
        rows += [[f"{cell} (no text)"] + [mean_sd(v)] * len(fractions) for cell, v in baseline.scores.items()]
    for model, stat, what, table in COMPONENTS:
        ours, definition = decoding_scores(trials, model, stat)
        if ours:
            rows.append([f"ours {what} ({model}: {definition})"] + [mean_sd(ours.get(f, [])) for f in fractions])
        ref = paper.get(stat, {})
        rows.append(
            [f"paper {what} ({table}, val, beam 10)"] + [f"{ref[f]:.3f}" if f in ref else "-" for f in fractions]
        )
    return markdown_table(["model \\ text fraction"] + [f"{f:g}" for f in fractions], rows)


def plot_downsampling(
    groups: dict[tuple, list[float]], keys: list[str], metric: str, path: Path, baseline: Baseline | None = None
) -> None:
    """Figure 3: each model's mean score against the fraction of captions with text (log scale), the
    speech-only baseline as a dashed line per panel's condition."""
    plt = _pyplot()
    mi, fi = keys.index("variant.model"), keys.index("data.text_fraction")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in dict.fromkeys(k[mi] for k in groups):
        pts = sorted((float(k[fi]), statistics.fmean(v)) for k, v in groups.items() if k[mi] == m)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    for (cell, values), style in zip((baseline.scores if baseline else {}).items(), ("--", ":")):
        ax.axhline(statistics.fmean(values), color="black", linestyle=style, label=f"{cell} (no text)")
    ax.set_xscale("log")
    ax.set_xlabel("fraction of training captions with text (Flickr8K: 1 = 34 h)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

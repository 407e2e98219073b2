"""Paper-style tables and plots of a finished sweep, from its MLflow runs.

    python -m vgs.results.report NAME [--tracking-uri URI] [--out DIR] [--metric val_r10]

Takes the most recent run of sweep NAME, groups its trials by the searched keys (seeds pooled),
and prints mean ± sd over seeds of each trial's best validation score, in the shape of the
paper's table for that sweep and next to the paper's own numbers where it gives them.  Saves
report.md, the metric per epoch of every trial (metric_per_epoch.png) and, for `downsampling`,
the curves of Higy et al. 2020's Figure 3 (downsampling.png), in --out and as MLflow artifacts of the
sweep's parent run (folder report/).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from vgs.config import ConfigError, default_tracking_uri, vgs_home
from vgs.log import report_error
from vgs.results.plots import _pyplot, chance_of, config_of, draw_sweep_plots, grid_means, sweep_trials
from vgs.results.verdict import above_chance, ordering

# The papers' numbers for the sweeps that reproduce a table (None: not given in the text).  A
# "layout" says how the sweep's table is drawn: "model x condition" (variant names MODEL/CONDITION
# against the paper's cells), "model x text fraction" (variant.model against data.text_fraction,
# the paper's WER/BLEU per fraction below); without one, a row per configuration.
PAPER = {
    "pipeline_vs_mtl": {
        "source": "Higy et al. 2020 Tables 1-2, validation R@10 on Flickr8K (mean of 3 runs)",
        "metric": "val_r10",
        "layout": "model x condition",
        # each condition's ranking as the paper states it (Tables 1-2 and §4.2), best first; the models
        # of a tier are tied there.  Full and reduced English: the pipelines tie (0.642 / 0.642, 0.586 /
        # 0.598) ahead of mtl-transcribe.  Translations: "the mtl-translate approach is the one giving
        # the best score ... outperforming the pipeline systems (both performing similarly well)", and
        # every text strategy improves over speech-image (mtl-match 0.337 sits with the pipelines'
        # 0.347 / 0.345).
        "orders": {
            "full": [("text-image",), ("pipe-ind", "pipe-seq"), ("mtl-asr",), ("mtl-match",), ("speech-image",)],
            "reduced": [("text-image",), ("pipe-ind", "pipe-seq"), ("mtl-asr",), ("mtl-match",), ("speech-image",)],
            "translations": [("text-image",), ("mtl-asr",), ("pipe-ind", "pipe-seq", "mtl-match"), ("speech-image",)],
        },
        "cells": {
            ("speech-image", "full"): 0.416,
            ("speech-image", "reduced"): 0.280,
            ("speech-image", "translations"): 0.285,
            ("text-image", "full"): 0.702,
            ("text-image", "reduced"): 0.653,
            ("text-image", "translations"): 0.626,
            ("pipe-ind", "full"): 0.642,
            ("pipe-ind", "reduced"): 0.586,
            ("pipe-ind", "translations"): 0.347,
            ("pipe-seq", "full"): 0.642,
            ("pipe-seq", "reduced"): 0.598,
            ("pipe-seq", "translations"): 0.345,
            ("mtl-asr", "full"): 0.569,
            ("mtl-asr", "reduced"): 0.478,
            ("mtl-asr", "translations"): 0.394,
            ("mtl-match", "full"): 0.451,
            ("mtl-match", "reduced"): 0.356,
            ("mtl-match", "translations"): 0.337,
        },
    },
    "sharing": {
        "source": "Chrupała 2019 Table 1, validation R@10 / median rank speech->image on Flickr8K (mean of 3 runs)",
        "metric": "val_s2i_r10",
        "cells": {
            ("row01",): "0.218 / medr 63.8",
            ("row02",): "0.279 / medr 42.3",
            ("row03",): "0.280 / medr 41.3",
            ("row04",): "0.280 / medr 43.0",
            ("row05",): "0.266 / medr 44.3",
            ("row06",): "0.281 / medr 39.7",
            ("row07",): "0.270 / medr 44.3",
            ("row08",): "0.255 / medr 48.3",
            ("row09",): "0.275 / medr 42.8",
            ("row10",): "0.257 / medr 49.8",
            ("row11",): "0.280 / medr 41.7",
            ("row12",): "0.252 / medr 50.7",
            ("row13",): "0.223 / medr 59.3",
        },
    },
    "downsampling": {
        "source": "Higy et al. 2020 Figure 3 (curves, no numbers in the text); ASR WER (Table 9) and SLT BLEU "
        "(Table 10, beam 10) for comparison with the pipelines' val WER / BLEU. Our BLEU is corpus BLEU (sacrebleu, "
        "Japanese on characters); the authors' code averages sentence BLEU, which runs lower on short "
        "captions, so compare trends, not digits",
        "metric": "val_r10",
        "layout": "model x text fraction",
        "wer": {1.0: 0.154, 0.332: 0.238, 0.112: 0.397, 0.038: 0.801, 0.0123: 1.034, 0.0039: 0.977},
        "bleu": {1.0: 0.256, 0.332: 0.153, 0.112: 0.073, 0.038: 0.065, 0.0123: 0.040, 0.0039: 0.021},
    },
}


# The papers' numbers that sit beside our scores of the same split and statistic, one table each:
# (title, our metric per statistic (query metric: s2i, or t2i for text-image), paper cells).  Rows
# are a sweep's configurations (a variant name's model/condition for pipeline_vs_mtl).
R1_R5_MEDR = ("r1", "r5", "medr")
PAPER_TABLES = {
    "pipeline_vs_mtl": [
        (
            "validation R@1 / R@5 / Medr (Higy et al. 2020 Tables 6-7)",
            "sel_val",
            R1_R5_MEDR,
            {
                "speech-image/full": (0.105, 0.299, 16.2),
                "speech-image/reduced": (0.059, 0.188, 38.3),
                "speech-image/translations": (0.059, 0.192, 36.0),
                "text-image/full": (0.258, 0.566, 4.0),
                "text-image/reduced": (0.228, 0.508, 5.0),
                "text-image/translations": (0.209, 0.492, 6.0),
                "pipe-ind/full": (0.232, 0.514, 5.0),
                "pipe-ind/reduced": (0.187, 0.452, 7.0),
                "pipe-ind/translations": (0.088, 0.248, 27.3),
                "pipe-seq/full": (0.224, 0.509, 5.2),
                "pipe-seq/reduced": (0.190, 0.459, 7.0),
                "pipe-seq/translations": (0.082, 0.242, 27.0),
                "mtl-asr/full": (0.177, 0.431, 7.8),
                "mtl-asr/reduced": (0.133, 0.352, 12.0),
                "mtl-asr/translations": (0.091, 0.285, 19.3),
                "mtl-match/full": (0.115, 0.321, 13.0),
                "mtl-match/reduced": (0.079, 0.244, 24.3),
                "mtl-match/translations": (0.071, 0.232, 26.3),
            },
        ),
        (
            "test R@10 (Higy et al. 2020 Table 3: the best pipeline and multitask model)",
            "test",
            ("r10",),
            {
                "pipe-seq/full": (0.631,),
                "pipe-seq/translations": (0.348,),
                "mtl-asr/full": (0.559,),
                "mtl-asr/translations": (0.392,),
            },
        ),
        (
            "test R@1 / R@5 / Medr (Higy et al. 2020 Table 8)",
            "test",
            R1_R5_MEDR,
            {
                "pipe-seq/full": (0.218, 0.499, 6.0),
                "pipe-seq/translations": (0.079, 0.248, 26.5),
                "mtl-asr/full": (0.174, 0.425, 8.0),
                "mtl-asr/translations": (0.099, 0.279, 19.0),
            },
        ),
    ],
    "latent_dim": [
        (
            "test R@10 speech->image / image->speech (Mortazavi 2020 Table 2, Places 400k, 1000 test pairs)",
            "test",
            ("s2i_r10", "i2s_r10"),
            {
                "DG4A2048": (0.620, 0.622),
                "DG4A1024": (0.652, 0.594),
                "DG3A1024": (0.677, 0.671),
                "DG2A2048": (0.628, 0.626),
                "DG2A1024": (0.590, 0.581),
            },
        )
    ],
    "sharing": [
        (
            "test R@10 / Medr speech->image (Chrupała 2019 Table 2: the 1-task baseline and the best 3-task row)",
            "test",
            ("r10", "medr"),
            {"row01": (0.244, 51.0), "row06": (0.296, 34.0)},
        ),
        # the analyses of the best epoch (train.analysis=true), on validation captions
        (
            "speaker-ID accuracy from the S2I encoder (Chrupała 2019 Table 3)",
            "analysis",
            ("speaker_acc",),
            {"row01": (0.297,), "row02": (0.101,), "row06": (0.085,)},
        ),
        (
            "RSA of the S2I encoder with MFCC / text / image (Chrupała 2019 Table 4)",
            "analysis",
            ("rsa_mfcc", "rsa_text", "rsa_image"),
            {"row01": (0.043, 0.194, 0.187), "row06": (0.030, 0.212, 0.222)},
        ),
        (
            "RSA of the S2T encoder with MFCC / text / image (Chrupała 2019 Table 4)",
            "analysis",
            ("s2t_rsa_mfcc", "s2t_rsa_text", "s2t_rsa_image"),
            {"row06": (0.099, 0.243, 0.105)},
        ),
        (
            "phoneme decoding accuracy from MFCC / the randomly initialised S / the trained S (Chrupała 2019 Table 5; "
            "its MFCC and random-init rows are one number each, here every run's own)",
            "analysis",
            ("phoneme_acc_mfcc", "phoneme_acc_random", "phoneme_acc"),
            {"row01": (0.284, 0.486, 0.528), "row06": (0.284, 0.486, 0.578)},
        ),
        (
            "RSA of the image space with MFCC / text (Chrupała 2019 Table 4, last row)",
            "analysis",
            ("image_rsa_mfcc", "image_rsa_text"),
            {"row06": (0.008, 0.083)},
        ),
    ],
}


def query_score(metrics: dict[str, float], prefix: str, stat: str) -> float | None:
    """A run's score of `stat` for its own queries: speech (s2i), or text for text-image (t2i);
    a stat that names its direction ('s2i_r10') is taken as is."""
    if "_" in stat:
        return metrics.get(f"{prefix}_{stat}")
    for direction in ("s2i", "t2i"):
        if f"{prefix}_{direction}_{stat}" in metrics:
            return metrics[f"{prefix}_{direction}_{stat}"]
    return None


def _number(stat: str, v: float) -> str:
    return f"{v:.1f}" if stat.endswith("medr") else f"{v:.3f}"


def order_lines(
    paper: dict, groups: dict[tuple, list[float]], chance: float | None, mode: str, alpha: float = 0.05
) -> list[str]:
    """Per condition of a "model x condition" sweep: does the paper's order of the models in that
    condition hold (vgs.results.verdict.ordering), and how far the weakest tier's model is above chance in
    its seed sd."""

    lines = []
    for condition in dict.fromkeys(k[0].split("/")[1] for k in groups if "/" in k[0]):
        order = paper["orders"].get(condition)
        if order is None:
            continue
        scores = {m: groups.get((f"{m}/{condition}",), []) for tier in order for m in tier}
        if not any(scores.values()):
            continue
        lines.append(f"- {condition}: {ordering(order, scores, mode, alpha).line}")
        last = order[-1][0]
        if chance is not None and scores[last]:
            lines.append(f"- {condition}: {above_chance(last, scores[last], chance)}")
    return lines


def best_seed(runs: list, mode: str) -> list:
    """The one run of a configuration whose selected-epoch score is best (Chrupała 2019's analyses
    are "carried out on the single best seed/epoch for each configuration")."""
    scored = [t for t in runs if t.score is not None]
    if not scored:  # no selection score logged: nothing to choose by
        return runs[:1]
    return [max(scored, key=lambda t: t.score if mode == "max" else -t.score)]


def paper_tables(name: str, trials, keys: list[str], mode: str = "max") -> str:
    """Our scores beside the paper's, one table per PAPER_TABLES entry of this sweep: mean over
    seeds (± sd where there are several) of the same split and statistic; the analyses of the
    best seed alone, as the paper.  A configuration whose runs were pruned has no test scores:
    its row says so."""

    out = []
    for title, prefix, stats, cells in PAPER_TABLES.get(name, []):
        rows = []
        for cell, ref in cells.items():
            every = [t for t in trials if " ".join(config_of(t)) == cell]
            runs = best_seed(every, mode) if prefix == "analysis" else every
            ours = []
            for stat in stats:
                values = [v for t in runs if (v := query_score(t.metrics, prefix, stat)) is not None]
                ours.append(
                    "-"
                    if not values
                    else _number(stat, statistics.fmean(values))
                    + (f" ± {_number(stat, statistics.stdev(values))}" if len(values) > 1 else "")
                )
            paper = " / ".join(_number(s, r) for s, r in zip(stats, ref))
            seeds = f"best of {len(every)}" if prefix == "analysis" else str(len(runs))
            if runs and any(o != "-" for o in ours):  # e.g. the analyses only exist with train.analysis=true
                rows.append([cell, " / ".join(ours), paper, seeds])
            elif runs and "phoneme_acc" in stats and "analysis_speaker_acc" in runs[0].metrics:
                rows.append([cell, "no phoneme timings in this corpus (forced alignments needed)", paper, seeds])
            elif runs and prefix == "test" and all(t.pruned for t in runs):
                rows.append([cell, "pruned: no test scores", paper, seeds])
        if rows:
            out.append(f"{title}\n\n" + markdown_table([" ".join(keys), "ours", "paper", "seeds"], rows))
    return "\n\n".join(out)


def sweep_run(client, name: str, which: str | None = None):
    """A sweep's parent run and its trials: the latest sweep of that name, or the one `which`
    names (its run name, which is its results folder's, e.g. pipeline_vs_mtl_20261202-124456, or
    its run id)."""
    exp = client.get_experiment_by_name(f"vgs-{name}")
    if exp is None:
        raise ConfigError(
            f"no MLflow experiment 'vgs-{name}' at this tracking URI; run `python -m vgs.sweep {name}` "
            f"first (or pass --tracking-uri)"
        )
    parents = client.search_runs(
        [exp.experiment_id],
        filter_string="tags.`vgs.kind` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1 if which is None else 5000,
    )
    if not parents:
        raise ConfigError(f"experiment 'vgs-{name}' holds no sweep run")
    if which is not None:
        named = [p for p in parents if which in (p.info.run_id, p.info.run_name)]
        if not named:
            raise ConfigError(
                f"no '{name}' sweep named '{which}' (its sweeps, newest first: "
                f"{', '.join(p.info.run_name for p in parents[:10])})"
            )
        parents = named
    parent = parents[0]
    trials = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=5000
    )
    return parent, trials


def trial_status(trials) -> dict[tuple, str]:
    """{configuration: its trials' fate}, e.g. '2 completed, 9 ep' or '1 pruned at ep 3'."""

    fates: dict[tuple, list[tuple[bool, int]]] = defaultdict(list)
    for t in trials:
        fates[config_of(t)].append((t.pruned, max((e for e, _ in t.history), default=0)))
    out = {}
    for config, runs in fates.items():
        done = [e for pruned, e in runs if not pruned]
        cut = sorted(e for pruned, e in runs if pruned)
        parts = ([f"{len(done)} completed, {max(done)} ep"] if done else []) + (
            [f"{len(cut)} pruned at ep {'/'.join(map(str, cut))}"] if cut else []
        )
        out[config] = "; ".join(parts)
    return out


def mean_sd(values: list[float]) -> str:
    """'0.412 ± 0.006 (n=2)'; a single seed has no sd to show, so none is printed."""
    if not values:
        return "-"
    m = statistics.fmean(values)
    if len(values) == 1:
        return f"{m:.3f} (n=1)"
    return f"{m:.3f} ± {statistics.stdev(values):.3f} (n={len(values)})"


def natural_key(values: tuple) -> tuple:
    """Sort key of a row of parameter values (MLflow keeps them as strings): numbers by value,
    so latent 64 comes before 256, and text after numbers."""

    def one(v):
        try:
            return (0, float(v), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(v))

    return tuple(one(v) for v in values)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def table_for(
    name: str, keys: list[str], groups: dict[tuple, list[float]], metric: str, status: dict[tuple, str] | None = None
) -> str:
    paper = PAPER.get(name, {})
    layout = paper.get("layout")
    if layout == "model x condition" and keys == ["variant.model"]:
        order = list(dict.fromkeys(m for m, _ in paper["cells"]))
        models = sorted(
            dict.fromkeys(k[0].split("/")[0] for k in groups),
            key=lambda m: order.index(m) if m in order else len(order),
        )
        conditions = ["full", "reduced", "translations"]
        rows = []
        for m in models:
            row = [m]
            for c in conditions:
                ours = mean_sd(groups.get((f"{m}/{c}",), []))
                ref = paper["cells"].get((m, c))
                row.append(f"{ours} · paper {ref:.3f}" if ref is not None else ours)
            rows.append(row)
        return markdown_table(["model"] + [f"{c} ({metric})" for c in conditions], rows)
    if layout == "model x text fraction" and set(keys) == {"variant.model", "data.text_fraction"}:
        mi, fi = keys.index("variant.model"), keys.index("data.text_fraction")
        fractions = sorted({float(k[fi]) for k in groups}, reverse=True)
        models = list(dict.fromkeys(k[mi] for k in groups))
        rows = []
        for m in models:
            rows.append(
                [m]
                + [
                    mean_sd(next((v for k, v in groups.items() if k[mi] == m and float(k[fi]) == f), []))
                    for f in fractions
                ]
            )
        rows.append(
            ["paper ASR WER (Table 9)"] + [f"{paper['wer'][f]:.3f}" if f in paper["wer"] else "-" for f in fractions]
        )
        rows.append(
            ["paper SLT BLEU (Table 10)"]
            + [f"{paper['bleu'][f]:.3f}" if f in paper["bleu"] else "-" for f in fractions]
        )
        return markdown_table(["model \\ text fraction"] + [f"{f:g}" for f in fractions], rows)
    rows = []
    for k, values in sorted(groups.items(), key=lambda kv: natural_key(kv[0])):
        ref = paper.get("cells", {}).get(k)
        rows.append(
            list(k)
            + [mean_sd(values)]
            + ([str(ref)] if paper.get("cells") else [])
            + ([status.get(k, "")] if status else [])
        )
    return markdown_table(
        keys + [f"{metric} mean ± sd"] + (["paper"] if paper.get("cells") else []) + (["trials"] if status else []),
        rows,
    )


def grid_table(keys: list[str], groups: dict[tuple, list[float]]) -> str:
    """A space of two keys as a grid: the first key's values down, the second's across."""
    rows = sorted({k[0] for k in groups}, key=lambda v: natural_key((v,)))
    cols = sorted({k[1] for k in groups}, key=lambda v: natural_key((v,)))
    return markdown_table(
        [f"{keys[0]} \\ {keys[1]}"] + cols, [[r] + [mean_sd(groups.get((r, c), [])) for c in cols] for r in rows]
    )


def plot_downsampling(groups: dict[tuple, list[float]], keys: list[str], metric: str, path: Path) -> None:

    plt = _pyplot()
    mi, fi = keys.index("variant.model"), keys.index("data.text_fraction")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in dict.fromkeys(k[mi] for k in groups):
        pts = sorted((float(k[fi]), statistics.fmean(v)) for k, v in groups.items() if k[mi] == m)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of training captions with text (Flickr8K: 1 = 34 h)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(
    name: str,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    metric: str | None = None,
    sweep: str | None = None,
) -> str:
    from mlflow.tracking import MlflowClient

    from vgs.sweep.spec import load

    spec = load(name)
    metric = metric or spec.metric
    client = MlflowClient(tracking_uri or default_tracking_uri())
    parent, runs = sweep_run(client, spec.name, sweep)
    keys = [k for k in spec.space if k != "train.seed"]
    trials = sweep_trials(client, parent.info.run_id, keys, metric)
    groups = grid_means(trials)
    if not groups:
        raise ConfigError(f"the '{name}' sweep {parent.info.run_name} has no trial with sel_{metric} yet")
    out_dir = Path(out) if out else vgs_home() / "reports" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    paper = PAPER.get(name, {})
    text = (
        f"# {name}\n\nsweep run {parent.info.run_id}, {len(runs)} trials; validation {metric} of each trial at "
        f"its selected epoch, mean ± sd over seeds\n\n{table_for(name, keys, groups, metric, trial_status(trials))}\n"
    )
    if len(keys) == 2 and not paper:
        text += f"\n{grid_table(keys, groups)}\n"
    chance = chance_of(metric, next((t.images for t in trials if t.images), None))
    if chance is not None:
        text += f"\nChance (a random ranking): {chance:.3f}.\n"
    if paper.get("orders") and keys == ["variant.model"]:
        text += (
            "\nThe paper's order of the models, per condition:\n\n"
            + "\n".join(order_lines(paper, groups, chance, spec.mode, spec.alpha))
            + "\n"
        )
    if paper:
        text += f"\nPaper: {paper['source']}.\n"
    compared = paper_tables(name, trials, keys, spec.mode)
    if compared:
        text += f"\n## The same splits and statistics as the papers' tables\n\n{compared}\n"
    files = draw_sweep_plots(
        trials, keys, spec.space, metric, spec.mode, out_dir, importance=spec.algorithm == "optuna"
    )
    if paper.get("layout") == "model x text fraction" and set(keys) == {"variant.model", "data.text_fraction"}:
        plot_downsampling(groups, keys, metric, out_dir / "downsampling.png")
        files.append(out_dir / "downsampling.png")
    (out_dir / "report.md").write_text(text)
    for f in [out_dir / "report.md", *files]:
        client.log_artifact(parent.info.run_id, str(f), artifact_path="report")
    return text + "\n" + "\n".join(f"saved {f}" for f in [out_dir / "report.md", *files]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.results.report", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="sweep name (vgs/search_spaces/NAME.yaml)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--out", help="folder for report.md and plots (default: .vgs/reports/NAME)")
    p.add_argument("--metric", help="validation metric to tabulate (default: the sweep's)")
    p.add_argument(
        "--sweep",
        help="which sweep of that name: its run name (the results folder's, e.g. "
        "pipeline_vs_mtl_20261202-124456) or run id (default: the latest)",
    )
    a = p.parse_args(argv)
    try:
        print(report(a.name, a.tracking_uri, a.out, a.metric, a.sweep))
    except ConfigError as e:
        return report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from vgs.cli_options import add_tracking_uri
from vgs.config import ConfigError, existing_tracking_uri, vgs_home
from vgs.log import report_error
from vgs.results.downsampling import baseline_note, plot_downsampling, speech_only_baseline, text_fraction_table
from vgs.results.papers import PAPER, PAPER_TABLES
from vgs.results.plots import chance_of, config_of, draw_sweep_plots, grid_means, sweep_trials
from vgs.results.tables import TABLE_TOP, markdown_table, mean_sd
from vgs.results.verdict import above_chance, ordering


def query_score(metrics: dict[str, float], prefix: str, stat: str) -> float | None:
    """A run's score of `stat` for its own queries: speech (s2i), or text for text-image (t2i);
    a stat that names its direction ('s2i_r10') is taken as is."""
    if "_" in stat:
        return metrics.get(f"{prefix}_{stat}")
    for direction in ("s2i", "t2i"):
        if f"{prefix}_{direction}_{stat}" in metrics:
            return metrics[f"{prefix}_{direction}_{stat}"]
    return None


def _number(stat: str, v: float | str) -> str:
    """A score as tables print it; a paper's range ('0.80 - 0.98') as the paper gives it."""
    if isinstance(v, str):
        return v
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
    seeds (± sd where there are several) of the same split and statistic, or the best seed's alone
    where the paper reports its best run/epoch (its analyses; Chrupała 2019 Table 2).  A
    configuration whose runs were pruned has no test scores: its row says so."""

    out = []
    for title, prefix, stats, cells, which in PAPER_TABLES.get(name, []):
        rows = []
        for cell, ref in cells.items():
            every = [t for t in trials if " ".join(config_of(t)) == cell]
            runs = best_seed(every, mode) if which == "best" else every
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
            seeds = f"best of {len(every)}" if which == "best" else str(len(runs))
            if runs and any(o != "-" for o in ours):  # e.g. the analyses only exist with train.analysis=true
                rows.append([cell, " / ".join(ours), paper, seeds])
            elif runs and "phoneme_acc" in stats and "analysis_speaker_acc" in runs[0].metrics:
                rows.append(
                    [
                        cell,
                        "no phoneme timings in this corpus (pass a forced aligner's as data.alignments)",
                        paper,
                        seeds,
                    ]
                )
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


def natural_key(values: tuple) -> tuple:
    """Sort key of a row of parameter values (MLflow keeps them as strings): numbers by value,
    so latent 64 comes before 256, and text after numbers."""

    def one(v):
        try:
            return (0, float(v), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(v))

    return tuple(one(v) for v in values)


def table_for(
    name: str,
    keys: list[str],
    groups: dict[tuple, list[float]],
    metric: str,
    status: dict[tuple, str] | None = None,
    mode: str = "max",
) -> str:
    """The sweep's configurations with their mean ± sd: in the paper's layout where it has one; with
    more than TABLE_TOP configurations the best of them (by `mode`) and a count of the rest."""
    paper = PAPER.get(name, {})
    layout = paper.get("layout")
    if layout == "model x condition" and keys == ["variant.model"]:
        return _model_by_condition(paper, groups, metric)
    rest = ""
    if len(groups) <= TABLE_TOP or paper.get("cells"):
        ordered = sorted(groups.items(), key=lambda kv: natural_key(kv[0]))
    else:  # hundreds of configurations: the best, then a count
        sign = 1 if mode == "max" else -1
        ordered = sorted(groups.items(), key=lambda kv: sign * statistics.fmean(kv[1]), reverse=True)
        others = [statistics.fmean(v) for _, v in ordered[TABLE_TOP:]]
        rest = (
            f"\n... and {len(others)} more configurations (means {min(others):.3f} to {max(others):.3f}); "
            f"every trial is under the MLflow parent run"
        )
        ordered = ordered[:TABLE_TOP]
    rows = []
    for k, values in ordered:
        ref = paper.get("cells", {}).get(k)
        rows.append(
            list(k)
            + [mean_sd(values)]
            + ([str(ref)] if paper.get("cells") else [])
            + ([status.get(k, "")] if status else [])
        )
    header = keys + [f"{metric} mean ± sd"] + (["paper"] if paper.get("cells") else []) + (["trials"] if status else [])
    return markdown_table(header, rows) + rest


def _model_by_condition(paper: dict, groups: dict[tuple, list[float]], metric: str) -> str:
    """Higy et al. 2020's Tables 1-2 layout: a row per model, a column per data condition, the paper's beside."""
    order = list(dict.fromkeys(m for m, _ in paper["cells"]))
    models = sorted(
        dict.fromkeys(k[0].split("/")[0] for k in groups), key=lambda m: order.index(m) if m in order else len(order)
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


def grid_table(keys: list[str], groups: dict[tuple, list[float]]) -> str:
    """A space of two keys as a grid: the first key's values down, the second's across."""
    rows = sorted({k[0] for k in groups}, key=lambda v: natural_key((v,)))
    cols = sorted({k[1] for k in groups}, key=lambda v: natural_key((v,)))
    return markdown_table(
        [f"{keys[0]} \\ {keys[1]}"] + cols, [[r] + [mean_sd(groups.get((r, c), [])) for c in cols] for r in rows]
    )


def report(
    name: str,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    metric: str | None = None,
    sweep: str | None = None,
) -> str:
    from mlflow.tracking import MlflowClient

    from vgs.search_spaces.spec import load

    spec = load(name)
    name = spec.name  # a YAML given by path ("/abs/x.yaml", "../x.yaml") is its sweep's name from here
    metric = metric or spec.metric
    client = MlflowClient(existing_tracking_uri(tracking_uri))
    parent, runs = sweep_run(client, spec.name, sweep)
    keys = [k for k in spec.space if k != "train.seed"]
    trials = sweep_trials(client, parent.info.run_id, keys, metric)
    groups = grid_means(trials)
    if not groups:
        raise ConfigError(f"the '{name}' sweep {parent.info.run_name} has no trial with sel_{metric} yet")
    out_dir = Path(out) if out else vgs_home() / "reports" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    paper = PAPER.get(name, {})
    # Higy et al. 2020 Figure 3 and Tables 9-10 (vgs.results.downsampling), with the speech-only baseline
    figure_3 = paper.get("layout") == "model x text fraction" and set(keys) == {"variant.model", "data.text_fraction"}
    baseline = speech_only_baseline(client, metric) if figure_3 else None
    if figure_3:
        table = text_fraction_table(paper, keys, groups, trials, baseline) + "\n\n" + baseline_note(baseline)
    else:
        table = table_for(name, keys, groups, metric, trial_status(trials), spec.mode)
    text = (
        f"# {name}\n\nsweep run {parent.info.run_id}, {len(runs)} trials; validation {metric} of each trial at "
        f"its selected epoch, mean ± sd over seeds\n\n{table}\n"
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
    if figure_3:
        plot_downsampling(groups, keys, metric, out_dir / "downsampling.png", baseline)
        files.append(out_dir / "downsampling.png")
    (out_dir / "report.md").write_text(text)
    for f in [out_dir / "report.md", *files]:
        client.log_artifact(parent.info.run_id, str(f), artifact_path="report")
    return text + "\n" + "\n".join(f"saved {f}" for f in [out_dir / "report.md", *files]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.results.report", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="sweep name (vgs/search_spaces/NAME.yaml)")
    add_tracking_uri(p)
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

"""A sweep's plots, drawn from its MLflow runs: the metric per epoch of every trial, a grid heat
map (two searched keys), parallel coordinates, Optuna's parameter importance, and the Pareto sets of
the score against trainable parameters and speech encoding time (vgs.results.pareto).

Drawn when a sweep ends (artifacts `plots/` of its parent run) and by `vgs.results.report`.  The data
step (`sweep_trials`) reads MLflow; the drawing functions take plain data, so tests can check
both halves.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vgs.results.pareto import COSTS, config_points, pareto_sets


@dataclass
class TrialRun:
    """One child run of a sweep, as the plots need it."""

    label: str  # the run's name ('layers=1 latent=256 s0')
    params: dict[str, str]  # the searched keys' values (MLflow keeps strings)
    seed: str
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, metric)
    score: float | None = None  # the metric at the selected epoch
    pruned: bool = False
    images: float | None = None  # validation images (R@k chance = k / images)
    metrics: dict[str, float] = field(default_factory=dict)  # the run's last value of every metric
    settings: dict[str, str] = field(default_factory=dict)  # the run's resolved config (its MLflow params)


def sweep_trials(client, parent_id: str, keys: list[str], metric: str) -> list[TrialRun]:
    """The child runs of a sweep's parent run (failed ones left out) with the metric's history."""
    exp = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=5000)
    out = []
    for r in runs:
        if r.info.status == "FAILED":
            continue
        history = sorted((h.step, h.value) for h in client.get_metric_history(r.info.run_id, metric))
        out.append(
            TrialRun(
                label=r.info.run_name or r.info.run_id[:8],
                params={k: r.data.params.get(k, "") for k in keys},
                seed=r.data.params.get("train.seed", ""),
                history=history,
                score=r.data.metrics.get(f"sel_{metric}"),
                pruned=r.data.tags.get("vgs.pruned") == "true",
                images=r.data.metrics.get("val_images"),
                metrics=dict(r.data.metrics),
                settings=dict(r.data.params),
            )
        )
    return sorted(out, key=lambda t: t.label)


def chance_of(metric: str, images: float | None) -> float | None:
    """R@k of a random ranking over `images` candidates (None where it does not apply)."""
    if not images or "_r" not in metric or metric.endswith("medr"):
        return None
    try:
        k = int(metric.rsplit("_r", 1)[1])
    except ValueError:
        return None
    return min(1.0, k / images)


def _pyplot():
    """matplotlib's pyplot drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def config_of(t: TrialRun) -> tuple:
    return tuple(t.params.values())


HIGHLIGHTED = 8  # configurations drawn in colour when a sweep has more; the rest are faint grey


def top_configs(trials: list[TrialRun], mode: str, k: int = HIGHLIGHTED) -> list[tuple]:
    """The k configurations with the best trial scores (all of them when there are k or fewer)."""
    sign = 1 if mode == "max" else -1
    best: dict[tuple, float] = {}
    for t in trials:
        if t.score is not None and not math.isnan(t.score):
            c = config_of(t)
            best[c] = max(best.get(c, -math.inf), sign * t.score)
    return sorted(best, key=lambda c: best[c], reverse=True)[:k]


def plot_metric_per_epoch(trials: list[TrialRun], metric: str, path: Path, mode: str = "max") -> None:
    """One line per trial, named by its run; one colour per configuration (seeds differ by line
    style); an x where the scheduler pruned a trial; the chance level dashed.  With more than
    HIGHLIGHTED configurations only the best are coloured and named; the others are faint grey
    lines behind them, counted in the legend."""
    plt = _pyplot()
    configs = list(dict.fromkeys(config_of(t) for t in trials))
    shown = set(top_configs(trials, mode)) if len(configs) > HIGHLIGHTED else set(configs)
    configs = [c for c in configs if c in shown]
    seeds = list(dict.fromkeys(t.seed for t in trials))
    # 17 distinct colours, no light/dark pairs; tab10's grey is left for the faint trials
    colours = tuple(c for i, c in enumerate(plt.cm.tab10.colors) if i != 7) + plt.cm.Dark2.colors
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    faint = [t for t in trials if t.history and config_of(t) not in shown]
    for i, t in enumerate(faint):
        xs, ys = [p[0] for p in t.history], [p[1] for p in t.history]
        label = f"{len(faint)} other trials" if i == 0 else None
        ax.plot(xs, ys, color="0.6", alpha=0.35, linewidth=0.8, marker=".", markersize=3, zorder=1, label=label)
    for t in trials:
        if not t.history or config_of(t) not in shown:
            continue
        colour = colours[configs.index(config_of(t)) % len(colours)]
        xs, ys = [p[0] for p in t.history], [p[1] for p in t.history]
        ax.plot(
            xs,
            ys,
            marker=".",
            color=colour,
            linestyle=styles[seeds.index(t.seed) % len(styles)],
            label=t.label + (" (pruned)" if t.pruned else ""),
            zorder=2,
        )
        if t.pruned:
            ax.plot(xs[-1], ys[-1], marker="x", markersize=9, color=colour, linestyle="none", zorder=2)
    chance = chance_of(metric, next((t.images for t in trials if t.images), None))
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"chance {chance:.3f}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    epochs = sorted({x for t in trials for x, _ in t.history})
    if 0 < len(epochs) <= 12:  # a short sweep (one epoch: a single column) gets exactly its epochs
        ax.set_xticks(epochs)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if len(trials) - len(faint) <= 24 and ax.get_legend_handles_labels()[0]:  # none: every trial failed
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grid_means(trials: list[TrialRun]) -> dict[tuple, list[float]]:
    """{configuration: scores over seeds} of the trials that have a score."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for t in trials:
        if t.score is not None and not math.isnan(t.score):
            groups[config_of(t)].append(t.score)
    return dict(groups)


def _sorted_values(values) -> list[str]:
    def key(v):
        try:
            return (0, float(v), "")
        except ValueError:
            return (1, 0.0, v)

    return sorted(set(values), key=key)


def plot_heatmap(trials: list[TrialRun], keys: list[str], metric: str, path: Path) -> None:
    """Two searched keys as rows and columns; each cell the mean over seeds (and n)."""
    plt = _pyplot()
    groups = grid_means(trials)
    # a cell whose every trial the scheduler stopped early: its score is an early epoch's, say so
    cut = {c for c in groups if all(t.pruned for t in trials if config_of(t) == c)}
    rows, cols = _sorted_values(k[0] for k in groups), _sorted_values(k[1] for k in groups)
    grid = [[statistics.fmean(groups[(r, c)]) if (r, c) in groups else math.nan for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 2.5, 0.8 * len(rows) + 1.8))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if (r, c) in groups:
                v = groups[(r, c)]
                ax.text(
                    j,
                    i,
                    f"{statistics.fmean(v):.3f}\n(n={len(v)}{', pruned' if (r, c) in cut else ''})",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white"
                    if grid[i][j] < (min(map(min, groups.values())) + max(map(max, groups.values()))) / 2
                    else "black",
                )
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(keys[1])
    ax.set_ylabel(keys[0])
    fig.colorbar(image, ax=ax, label=f"{metric} (selected epoch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_parallel_coordinates(trials: list[TrialRun], keys: list[str], metric: str, path: Path) -> None:
    """One vertical axis per searched key and one for the metric; a line per trial, coloured by its score."""
    plt = _pyplot()
    scored = [t for t in trials if t.score is not None and not math.isnan(t.score)]
    axes = keys + [metric]
    ticks = {k: _sorted_values(t.params[k] for t in scored) for k in keys}
    lo, hi = min(t.score for t in scored), max(t.score for t in scored)
    fig, ax = plt.subplots(figsize=(1.8 * len(axes) + 1.5, 4.5))
    cmap = plt.cm.viridis

    def position(k: str, t: TrialRun) -> float:
        if k == metric:
            return (t.score - lo) / (hi - lo) if hi > lo else 0.5
        values = ticks[k]
        return values.index(t.params[k]) / (len(values) - 1) if len(values) > 1 else 0.5

    for t in sorted(scored, key=lambda t: t.score):
        ax.plot(
            range(len(axes)),
            [position(k, t) for k in axes],
            color=cmap((t.score - lo) / (hi - lo) if hi > lo else 1.0),
            alpha=0.8,
            marker="o",
        )
    for i, k in enumerate(axes):
        ax.axvline(i, color="black", linewidth=0.8)
        labels = ticks.get(k) or [f"{lo:.3f}", f"{hi:.3f}"]
        for j, v in enumerate(labels):
            ax.text(i + 0.03, j / (len(labels) - 1) if len(labels) > 1 else 0.5, v, fontsize=7, va="center")
    ax.set_xticks(range(len(axes)), [k.rsplit(".", 1)[-1] if k != metric else k for k in axes])
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes) - 0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def param_importance(trials: list[TrialRun], space: dict[str, dict[str, list]], mode: str) -> dict[str, float]:
    """Optuna's parameter importance (fANOVA) of the searched keys over the trials' scores."""
    import optuna

    dists = {}
    for key, dist in space.items():
        kind, values = next(iter(dist.items()))
        dists[key] = (
            optuna.distributions.CategoricalDistribution([str(v) for v in values])
            if kind == "choice"
            else optuna.distributions.FloatDistribution(
                float(min(values)), float(max(values)), log=kind == "loguniform"
            )
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for t in trials:
        if t.score is None or math.isnan(t.score):
            continue
        params = {
            k: (t.params[k] if isinstance(d, optuna.distributions.CategoricalDistribution) else float(t.params[k]))
            for k, d in dists.items()
        }
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=t.score))
    # fANOVA (a random forest's variance split), seeded; Optuna 5's default PED-ANOVA needs far
    # more trials than a sweep of a few configurations has (it split 0.56 / 0.44 where one key did all)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return {k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()}


def plot_importance(importance: dict[str, float], metric: str, path: Path) -> None:
    plt = _pyplot()
    names = list(importance)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    ax.barh(names, [importance[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance for {metric} (Optuna, fANOVA)")
    ax.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pareto_trials(trials: list[TrialRun]) -> list[dict]:
    """The full-budget runs as vgs.results.pareto reads them (config, score and costs)."""
    return [
        {"config": t.params, "status": "completed", "score": t.score, **t.metrics}
        for t in trials
        if not t.pruned and t.score is not None
    ]


def plot_pareto(trials: list[TrialRun], metric: str, mode: str, path: Path) -> bool:
    """Score against trainable parameters and against encoding time: every configuration (its seeds'
    mean), the Pareto set joined by a line and labelled.  False where fewer than two configurations
    report a cost."""
    records = pareto_trials(trials)
    sets = pareto_sets(records, "score", mode)
    if not sets:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, (cost, front) in zip(axes[0], sets.items()):
        points = config_points(records, "score", cost)
        ax.scatter([p.cost for p in points], [p.score for p in points], color="0.6", s=20, label="configuration")
        ax.plot([p["cost"] for p in front], [p["score"] for p in front], "o-", color="tab:red", label="Pareto set")
        for p in front:
            label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in p["config"].items())
            ax.annotate(label, (p["cost"], p["score"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log" if cost == "params_trainable" else "linear")
        ax.set_xlabel(COSTS[cost])
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"{metric} against size and speed (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def draw_sweep_plots(
    trials: list[TrialRun], keys: list[str], space: dict, metric: str, mode: str, out_dir: Path, importance: bool = True
) -> list[Path]:
    """Every plot the trials allow, as PNG files in out_dir: metric_per_epoch always; heatmap for
    exactly two searched keys; parallel_coordinates for two or more; param_importance (where the
    search is Optuna's) once at least two configurations have a score."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / "metric_per_epoch.png"]
    plot_metric_per_epoch(trials, metric, files[0], mode)
    configs = grid_means(trials)
    if len(keys) == 2 and configs:
        files.append(out_dir / "heatmap.png")
        plot_heatmap(trials, keys, metric, files[-1])
    if len(keys) >= 2 and configs:
        files.append(out_dir / "parallel_coordinates.png")
        plot_parallel_coordinates(trials, keys, metric, files[-1])
    varying = [k for k in keys if len({c[keys.index(k)] for c in configs}) > 1]
    scores = {v for values in configs.values() for v in values}
    if importance and varying and len(configs) >= 2 and len(scores) > 1:  # fANOVA needs scores that differ
        files.append(out_dir / "param_importance.png")
        plot_importance(param_importance(trials, {k: space[k] for k in keys}, mode), metric, files[-1])
    if plot_pareto(trials, metric, mode, out_dir / "pareto.png"):
        files.append(out_dir / "pareto.png")
    return files

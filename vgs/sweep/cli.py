"""The `python -m vgs.sweep` command line: its options, and what it prints when the sweep ends."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from vgs.cli_options import add_base, add_data, add_overrides, add_skip_bad, add_tracking_uri
from vgs.config import ConfigError, parse_cli_overrides
from vgs.data.records import CorpusError
from vgs.environment import describe
from vgs.log import get_logger, report_error, set_verbosity, verbosity
from vgs.results.retrieve import register_best
from vgs.search_spaces.model import SCHEDULERS
from vgs.sweep import storage as storages
from vgs.sweep.driver import dry_run, run_sweep
from vgs.sweep.options import SweepOptions
from vgs.sweep.phases import parent_status
from vgs.sweep.ray_start import stop_ray
from vgs.sweep.tracking.store import MODEL_TRAINING_VIEW, client
from vgs.sweep.tune_setup import SweepInterrupted

log = get_logger(__name__)


def mlflow_ui_line(tracking_uri: str, experiment_id: str | None, parent_run_id: str | None = None) -> str:
    """Where to look at the runs: a tracking server's own UI, or the command that opens a local store's
    (quoted: it is pasted into a shell, and paths may hold spaces or quotes); then the runs table and
    the parent run (its Description holds the verdict and table; its artifacts, plots/)."""
    # ?workflowType=machine_learning: MLflow 3's model-training pages (runs, metrics), not its GenAI ones
    runs_table = f"#/experiments/{experiment_id}?{MODEL_TRAINING_VIEW}" if experiment_id else ""
    shown = storages.redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        base, opening = shown.rstrip("/"), "MLflow UI (the tracking server):"
    else:
        base = "http://127.0.0.1:5000"
        opening = f"MLflow UI: {shlex.join([mlflow_command(), 'ui', '--backend-store-uri', shown])}   then open"
    lines = [f"{opening} {base}/{runs_table}   (the runs table)"]
    if experiment_id and parent_run_id:
        parent = f"#/experiments/{experiment_id}/runs/{parent_run_id}?{MODEL_TRAINING_VIEW}"
        lines.append(f"  the sweep's parent run: {base}/{parent}")
    return "\n".join(lines)


def mlflow_command() -> str:
    """The mlflow executable beside this Python (e.g. .venv/bin/mlflow), so the printed command works as is."""
    candidate = Path(sys.executable).parent / "mlflow"
    if candidate.exists():
        try:
            return str(candidate.relative_to(Path.cwd()))
        except ValueError:
            return str(candidate)
    return "mlflow"


def _pick(item: str) -> tuple[str, list[str]]:
    """--pick KEY=A,B -> (KEY, [A, B])."""
    key, sep, values = item.partition("=")
    if not sep or not values:
        raise argparse.ArgumentTypeError(f"'{item}' must look like KEY=A,B")
    return key.strip(), [v.strip() for v in values.split(",")]


def _seeds(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got '{text}'") from None


def _resources(text: str) -> dict[str, float]:
    """--resources cpu=N,gpu=F,workers=N -> {'cpu': N, ...}."""
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() not in ("cpu", "gpu", "workers"):
            raise argparse.ArgumentTypeError(f"takes cpu=N,gpu=N,workers=N; got '{item}'")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key.strip()} must be a number, got '{value}'") from None
    return out


SAMPLERS_HELP = """\
the search (the YAML's `search:`; every setting is recorded on the parent run as search.*):
  algorithm grid      every cell of the choices, each with every seed
  sampler tpe         Optuna's TPE: 10 random configurations, then ones drawn where the best scores
                      lie (multivariate, constant_liar: a running trial counts as a poor one); with
                      several seeds it learns from their mean, a pruned trial from its last score
  sampler random      independent draws
  sampler bruteforce  each combination of the choices once
  `search.seed` fixes the draws; the seeds of training are `seeds:` (or --seeds)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vgs.sweep",
        description="Run a named sweep with Ray Tune.",
        epilog=SAMPLERS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="search space name (vgs/search_spaces/NAME.yaml) or a YAML path")
    add_overrides(p)
    add_data(p, default="the built-in corpus, which --size paper takes only when named: --data builtin")
    add_base(
        p,
        None,
        why="instead of the YAML's (or its size's); the YAML's overrides still apply. "
        "For a paper's own setup use --size paper instead",
    )
    p.add_argument(
        "--size",
        choices=("cpu", "paper"),
        help="for a sweep that reproduces a paper table: cpu (the default: scaled to run on a laptop, "
        "docs/results.md's figures) or paper (the paper's own setup, for GPUs; see "
        'docs/paper-sweeps.md, "Reproducing the papers at their size")',
    )
    p.add_argument(
        "--bench",
        metavar="FILE",
        help="with --dry-run: a `vgs bench --json FILE` measurement whose paper-model step rate turns "
        "the plan into GPU-hours (default: a stated reference figure)",
    )
    add_search_options(p)
    add_run_options(p)
    return p


def add_search_options(p: argparse.ArgumentParser) -> None:
    """What the search runs: samples, picks, seeds, the verdict's alpha, limits, confirmation, scheduler."""
    p.add_argument("--samples", type=int, help="number of Optuna trials (default: search.num_samples of the YAML)")
    p.add_argument(
        "--pick",
        action="append",
        default=[],
        metavar="KEY=A,B",
        type=_pick,
        help="keep only these choices of a space key, e.g. --pick variant.model=pipe-seq/full, or a "
        "pattern: 'variant.model=*/full' (repeatable)",
    )
    p.add_argument(
        "--seeds",
        type=_seeds,
        help="comma-separated seeds instead of the YAML's, e.g. --seeds 0; every configuration runs with each",
    )
    p.add_argument(
        "--add-seeds",
        type=int,
        default=0,
        metavar="N",
        help="with --resume of a finished sweep: run its top configurations (--top K) with N more seeds "
        "under the same MLflow parent, reusing every trial run; verdict, tables and plots are redone",
    )
    p.add_argument(
        "--top",
        type=int,
        metavar="K",
        help="with --add-seeds: how many of the best configurations (default: confirm.top, else 2)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        help="significance level of the verdict's Welch t-tests (default: the YAML's alpha, or 0.05)",
    )
    p.add_argument(
        "--max-trials",
        type=int,
        metavar="N",
        help="refuse a search of more than N trials (default: the YAML's search.max_trials, or 2000; 0: no limit)",
    )
    p.add_argument(
        "--confirm",
        type=int,
        metavar="N",
        help="after the search, run the best N configurations with every seed of confirm.seeds (or "
        "the sweep's seeds and one more) to the full budget; 0 turns the YAML's confirmation off",
    )
    p.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        help="scheduler.type instead of the YAML's: asha (asynchronous), halving (synchronous successive "
        "halving: every configuration reaches a rung before the best go on), none (every trial to "
        "the full budget); the YAML's grace_period and reduction_factor stay",
    )
    p.add_argument(
        "--resources",
        type=_resources,
        default={},
        help="per-trial resources instead of the YAML's: cpu=N,gpu=F per worker and "
        "workers=N (DDP workers per trial), e.g. gpu=0.25 or gpu=1,workers=4",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Where and how it runs: storage, tracking, resume, the cluster, the dry run, output."""
    p.add_argument(
        "--storage",
        help="Ray results: a folder, or an s3:// gs:// file:// URI that every node of a "
        "cluster reaches (default: .vgs/ray_results)",
    )
    add_tracking_uri(p)
    p.add_argument("--resume", action="store_true", help="continue the most recent run of this sweep")
    add_skip_bad(p)
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and stop: each cell's resolved configuration, model and parameters, "
        "training batches per objective per epoch, the sweep's cost and resources (no training, no Ray)",
    )
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON, one object per cell")
    p.add_argument(
        "--register",
        metavar="NAME",
        help="register the best trial's checkpoint in the MLflow Model Registry as a new version of "
        "NAME (load it with: python -m vgs.results.retrieve --run models:/NAME ...)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show the trials' own output (Ray prefixes it with the worker) and every log line "
        "of Ray, Optuna and MLflow; by default the driver prints one line per trial-epoch",
    )


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_intermixed_args(argv)  # overrides may come before or after options
    # Ray's new console output prints a boxed experiment header and TensorBoard hints even at
    # verbose=0; the legacy one at verbose=0 prints nothing (our driver prints the progress)
    a.verbose = a.verbose or verbosity() >= 2  # `vgs -v sweep ...` is --verbose too
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1" if a.verbose else "0")
    if a.verbose:
        set_verbosity(2)
    # We checkpoint every epoch on purpose (resumable trials); Ray's warning about it is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        overrides = parse_cli_overrides(a.overrides)
        if a.skip_bad:
            overrides["data.skip_bad"] = "true"
        opts = sweep_options(a, overrides)
        if a.dry_run:
            return dry_run(opts, a.json, a.bench)
        summary = run_sweep(opts)
    except (ConfigError, CorpusError, FileExistsError) as e:
        return report_error(e)
    except SweepInterrupted as e:
        log.warning(f"\n{e}")
        return 130
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            stop_ray()  # at once: Ray's own exit would spend a grace second on each of its processes
    print_summary(summary, a.register)
    return 0 if parent_status(summary) == "FINISHED" else 1


def sweep_options(a: argparse.Namespace, overrides: dict[str, str]) -> SweepOptions:
    """The parsed command line as SweepOptions (a dry run reads the plan's part of them)."""
    return SweepOptions(
        a.name,
        data=a.data,
        storage=a.storage,
        tracking_uri=a.tracking_uri,
        resume=a.resume,
        overrides=overrides,
        address=a.address,
        samples=a.samples,
        picks=dict(a.pick),
        seeds=a.seeds,
        resources=a.resources,
        confirm=a.confirm,
        verbose=a.verbose,
        base=a.base,
        scheduler=a.scheduler,
        size=a.size,
        alpha=a.alpha,
        max_trials=a.max_trials,
        add_seeds=a.add_seeds,
        top=a.top,
    )


def print_summary(summary: dict, register: str | None) -> None:
    """The sweep's answer on the terminal: cost, table, best trial, failures, where to look, verdict."""
    best = summary.get("best")
    c = summary["compute"]
    print(
        f"\nsweep '{summary['sweep']}' finished in {summary['wall_seconds']:.0f} s; {c['trials']} trials, "
        f"{c['trial_epochs']} trial-epochs, {c['core_seconds']:.0f} core-seconds of training"
    )
    print(summary["table"])
    if best:
        cfg = ", ".join(f"{k}={v}" for k, v in best["config"].items() if k != "train.seed")
        seed = f" (seed {best['config']['train.seed']})" if "train.seed" in best["config"] else ""
        if best.get("val_s2i_r10") is not None:
            print(
                f"\nbest trial {best['trial_id']}{seed}: {cfg} -> val R@10 speech->image {best['val_s2i_r10']:.3f}, "
                f"image->speech {best['val_i2s_r10']:.3f} (epoch {best['best_epoch']})"
            )
        else:
            print(
                f"\nbest trial {best['trial_id']}{seed}: {cfg} -> {summary['metric']} "
                f"{best[summary['metric']]:.3f} (epoch {best['best_epoch']})"
            )
        if best.get("test_s2i_r10") is not None:
            print(
                f"  test (best epoch): R@10 speech->image {best['test_s2i_r10']:.3f}, "
                f"image->speech {best['test_i2s_r10']:.3f}"
            )
    for t in summary["trials"]:
        if t.get("error"):
            print(f"trial {t['trial_id']} failed: {t['error']}")
    print(f"\nresults: {storages.redact(summary['sweep_dir'])}")
    print(mlflow_ui_line(summary["tracking_uri"], summary.get("experiment_id"), summary.get("parent_run_id")))
    if summary.get("environment"):
        print(f"environment: {describe(summary['environment'])}")
    if register and best and summary.get("parent_run_id"):
        try:
            registered = register_best(client(summary["tracking_uri"]), summary["parent_run_id"], register)
            print(f"registered {registered}: python -m vgs.results.retrieve --run models:/{register} --wav FILE")
        except ConfigError as e:
            log.error(f"error: --register {register}: {e}")
    print(f"\nverdict: {summary['verdict']}")

"""What a sweep's MLflow runs hold beside their metrics: a child run's name, the source tags of every
run, and the search record (space, sampler, scheduler, seeds) its parent run keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vgs.environment import git_commit
from vgs.search_spaces.model import sampler_settings


def run_label(config: dict[str, Any], seed: Any) -> str:
    """A child run's name: the values its trial searched, short enough for a chart legend
    ('layers=1 latent=256 s0', 'pipe-seq/full s1'); a variant shows its name alone."""
    parts = []
    for k, v in config.items():
        if k.startswith("__") or k == "train.seed":
            continue
        v = f"{v:g}" if isinstance(v, float) else str(v)
        parts.append(v if k.startswith("variant.") else f"{k.rsplit('.', 1)[-1]}={v}")
    if seed is not None:
        parts.append(f"s{seed}")
    return " ".join(parts)[:200] or "base"


def source_tags() -> dict[str, str]:
    """MLflow's source tags for every run of a sweep: the entry point and, in a git checkout,
    its commit (and whether the work tree had changes); an installed package gives its version."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": f"{Path(sys.executable).name} -m vgs.sweep"}
    try:
        tags["vgs.version"] = version("vgs")
    except PackageNotFoundError:
        pass
    checkout = git_commit()
    if checkout:
        tags["mlflow.source.git.commit"] = checkout["commit"]
        tags["mlflow.source.git.branch"] = checkout["branch"]
        tags["vgs.git_dirty"] = checkout["dirty"]
    return tags


def search_record(spec) -> dict[str, Any]:
    """What a sweep searched, for its parent run: space, metric and mode, search algorithm and
    sampler, scheduler with its settings, seeds and the confirmation phase."""
    return {
        "space": spec.space,
        "variants": spec.variants,
        "metric": spec.metric,
        "mode": spec.mode,
        "search": {
            "algorithm": spec.algorithm,
            "num_samples": spec.num_samples,
            "sampler": spec.sampler,
            "seed": spec.search_seed,
            **(
                {"sampler_settings": sampler_settings(spec.sampler, spec.search_seed)}
                if spec.algorithm == "optuna"
                else {}
            ),
        },
        "scheduler": spec.scheduler,
        "seeds": spec.seeds,
        "confirm": {"top": spec.confirm_top, "seeds": spec.confirm_seeds},
        "base": spec.base,
        "overrides": spec.overrides,
    }


def search_params(record: dict[str, Any]) -> dict[str, str]:
    """The search record flattened into parent-run parameters ('space.model.latent': 'choice [64, 128]')."""
    params = {
        f"space.{k}": " ".join(f"{kind} {values}" for kind, values in d.items()) for k, d in record["space"].items()
    }
    params.update({f"search.{k}": str(v) for k, v in record["search"].items() if k != "sampler_settings"})
    params.update({f"search.sampler.{k}": str(v) for k, v in record["search"].get("sampler_settings", {}).items()})
    params.update({f"scheduler.{k}": str(v) for k, v in record["scheduler"].items()})
    params.update({"mode": record["mode"], "seeds": ",".join(map(str, record["seeds"]))})
    return {k: v[:6000] for k, v in params.items()}

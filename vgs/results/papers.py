"""The papers' numbers for the sweeps that reproduce a table, read from
vgs/search_spaces/papers/NAME.yaml (data beside each search space, not code).

PAPER[name]: source, metric, layout ("model x condition": variant names MODEL/CONDITION against
the paper's cells; "model x text fraction": variant.model against data.text_fraction, with the
paper's WER/BLEU per fraction), orders (each condition's ranking as the paper states it, best
first, tiers tied), cells (the paper's score per row, keyed by a tuple of the row's name parts).
PAPER_TABLES[name]: (title, our score prefix, statistics, the paper's values per row, runs) for each
table printed beside ours; runs: "mean" (over seeds) or "best" (the one run whose validation score
selected it, as a paper that reports "the best run/epoch").  None in the YAML: the paper does not
give that number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PAPERS_DIR = Path(__file__).resolve().parents[1] / "search_spaces" / "papers"


def _paper(raw: dict[str, Any]) -> dict[str, Any]:
    out = {k: raw[k] for k in ("source", "metric", "layout", "wer", "bleu") if k in raw}
    if "orders" in raw:
        out["orders"] = {c: [tuple(tier) for tier in tiers] for c, tiers in raw["orders"].items()}
    if "cells" in raw:
        out["cells"] = {tuple(k.split("/")): v for k, v in raw["cells"].items()}
    return out


def _tables(raw: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...], dict[str, tuple], str]]:
    out = []
    for t in raw.get("tables", []):
        # the analyses are of the best seed by default (Chrupała 2019's "single best seed/epoch")
        runs = t.get("runs", "best" if t["scores"] == "analysis" else "mean")
        if runs not in ("mean", "best"):
            raise ValueError(f"{t['title']}: runs must be mean or best, not {runs!r}")
        out.append((t["title"], t["scores"], tuple(t["stats"]), {k: tuple(v) for k, v in t["cells"].items()}, runs))
    return out


def load_papers(folder: Path = PAPERS_DIR) -> tuple[dict[str, dict], dict[str, list]]:
    """(PAPER, PAPER_TABLES) from every NAME.yaml in `folder`."""
    paper, tables = {}, {}
    for path in sorted(folder.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        if set(raw) - {"tables"}:
            paper[path.stem] = _paper(raw)
        if raw.get("tables"):
            tables[path.stem] = _tables(raw)
    return paper, tables


PAPER, PAPER_TABLES = load_papers()

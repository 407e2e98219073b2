"""Command-line options that mean one thing in every vgs command (train, sweep, prepare, report,
retrieve and the tools), defined once so that their names, defaults and help read the same."""

from __future__ import annotations

import argparse

from vgs.config import BASE_CONFIGS

BUILTIN = "the built-in corpus"


def add_overrides(p: argparse.ArgumentParser, example: str = "train.epochs=10", what: str = "the base config") -> None:
    """Positional dotted overrides (parse with parse_intermixed_args: they may come between options)."""
    p.add_argument("overrides", nargs="*", help=f"dotted overrides of {what}, e.g. {example}")


def add_data(p: argparse.ArgumentParser, default: str = BUILTIN, required: bool = False) -> None:
    """--data: the corpus folder (any layout vgs reads)."""
    layouts = "Flickr8K Audio, Places or SpokenCOCO layout, detected (docs/corpora.md)"
    p.add_argument(
        "--data", required=required, help=f"corpus folder: {layouts}" + ("" if required else f"; default: {default}")
    )


def add_base(p: argparse.ArgumentParser, default: str | None, why: str = "") -> None:
    """--base: a named base config (vgs.config.BASE_CONFIGS)."""
    shown = f" (default: {default})" if default else ""
    p.add_argument(
        "--base",
        default=default,
        help=f"named base config{shown}: {', '.join(BASE_CONFIGS)}" + (f"; {why}" if why else ""),
    )


def add_tracking_uri(p: argparse.ArgumentParser) -> None:
    """--tracking-uri: where the MLflow runs are (a relative SQLite file is made absolute by the caller)."""
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI: sqlite:///PATH or http://HOST:PORT (default: sqlite:///<cwd>/mlflow.db)",
    )


def add_skip_bad(p: argparse.ArgumentParser) -> None:
    """--skip-bad: leave out unreadable inputs instead of stopping."""
    p.add_argument(
        "--skip-bad", action="store_true", help="leave out missing or unreadable audio and image files (with a report)"
    )

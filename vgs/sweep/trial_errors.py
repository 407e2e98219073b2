"""One line that says why a trial failed, from the exception text Ray hands back (it wraps the
trial's own error in its tracebacks, or replaces it when the worker was killed)."""

from __future__ import annotations

import re
from pathlib import Path

# Ray's memory monitor kills workers when the node's memory passes RAY_memory_usage_threshold
# (0.95 of the node by default); its message is some 40 lines of tables.
OOM_KILLED = "killed due to the node running low on memory"


def error_text(trial: object) -> str:
    """The traceback Tune wrote for a failed trial ("" when it wrote none or it cannot be read)."""
    path = getattr(trial, "error_file", None)
    try:
        return Path(path).read_text() if path else ""
    except OSError:
        return ""


def error_reason(error: object) -> str | None:
    """The line of a trial's error that says what went wrong (None: no error)."""
    if not error:
        return None
    text = str(error)
    if OOM_KILLED in text:
        return out_of_memory_reason(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [
        ln
        for ln in lines
        if ln.startswith(("vgs.", "TrialOutOfMemory", "ConfigError", "CorpusError")) or "Error:" in ln
    ]
    return (named or lines or ["failed"])[-1][:500]


def out_of_memory_reason(text: str) -> str:
    """Ray's out-of-memory kill, as the node's memory and the threshold it passed."""
    used = re.search(r"was (\S+) used / (\S+) limit", text)
    threshold = re.search(r"threshold of \S+ \(([\d.]+% of \S+) limit\)", text)
    seen = f"; the node had {used.group(1)} of {used.group(2)} in use" if used else ""
    limit = f", over Ray's threshold of {threshold.group(1)}" if threshold else ""
    return (
        f"killed by Ray's out-of-memory monitor{seen}{limit}: run fewer trials at once "
        f"(max_concurrent in the sweep YAML) or smaller ones; RAY_memory_usage_threshold moves the threshold"
    )

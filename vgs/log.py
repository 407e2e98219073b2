"""vgs's messages: the `logging` module, one verbosity switch.

Every module logs through `logging.getLogger(__name__)` (children of "vgs"); nothing else writes
notes to stderr.  The "vgs" logger has one handler, which writes the bare message to whatever
sys.stderr is at the time (so pytest's capture and Ray's worker logs see it).  The level is the
switch: verbosity 0 = warnings and errors only, 1 = progress (the default), 2 = debug and the
libraries' own output (`vgs sweep --verbose`).  Progress bars (vgs.progress) draw at 1 and above.
The switch starts from $VGS_VERBOSITY, so Ray's worker processes inherit the driver's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

ROOT = logging.getLogger("vgs")
LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
ENV = "VGS_VERBOSITY"


class _CurrentStderr(logging.StreamHandler):
    """A stream handler bound to sys.stderr at each write, not at creation."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns one; the property ignores it
        pass


def _level_from_env() -> int:
    try:
        return LEVELS[min(2, max(0, int(os.environ.get(ENV, "1"))))]
    except ValueError:
        return logging.INFO


if not any(isinstance(h, _CurrentStderr) for h in ROOT.handlers):
    ROOT.addHandler(_CurrentStderr())
    ROOT.propagate = False  # a host application's root handlers would print every line twice
    ROOT.setLevel(_level_from_env())


def set_verbosity(verbosity: int) -> None:
    """0 warnings only, 1 progress, 2 debug; also for child processes started afterwards."""
    verbosity = min(2, max(0, verbosity))
    ROOT.setLevel(LEVELS[verbosity])
    os.environ[ENV] = str(verbosity)


def verbosity() -> int:
    return {v: k for k, v in LEVELS.items()}.get(ROOT.getEffectiveLevel(), 1)


def shows_progress() -> bool:
    return ROOT.isEnabledFor(logging.INFO)


@contextlib.contextmanager
def quiet():
    """Warnings and errors only, for the length of the block (this process)."""
    before = ROOT.level
    ROOT.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ROOT.setLevel(before)


# MLflow's own prints: a "View run ... at: URL" line with emoji for every run ended (one per trial in a
# sweep's output) and a progress bar per artifact download; vgs prints its own links and progress
QUIET_MLFLOW = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def quiet_mlflow() -> None:
    """MLflow's prints off in this process (and the processes it starts), unless the user set them."""
    for key, value in QUIET_MLFLOW.items():
        os.environ.setdefault(key, value)


def report_error(e: BaseException, code: int = 2) -> int:
    """A command's refusal: 'error: <what and why>' on stderr, and its exit status."""
    ROOT.error(f"error: {e}")
    return code


def get_logger(name: str) -> logging.Logger:
    """A module's logger: logging.getLogger(__name__), except that a module run as a program
    (`python -m vgs.sweep`: __name__ is "__main__") still logs under "vgs"."""
    if name == "__main__":
        spec = sys.modules["__main__"].__spec__
        name = spec.name if spec is not None and spec.name.startswith("vgs") else "vgs"
    return logging.getLogger(name)

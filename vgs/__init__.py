"""vgs: sweeps for visually grounded speech models."""

from vgs import log as _log  # noqa: F401  (installs the "vgs" logger's handler: vgs.log)

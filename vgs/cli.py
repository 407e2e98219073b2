"""The `vgs` console script: one entry point for the package's commands.

vgs [-q | -v] COMMAND ...   -q: warnings and errors only; -v: debug and the libraries' output
                            (the one verbosity switch, vgs.log; also $VGS_VERBOSITY=0|1|2)

vgs sweep NAME ...      = python -m vgs.sweep
vgs train ...           = python -m vgs.train
vgs synth ...           = python -m vgs.data.synth
vgs models info ...     = python -m vgs.models
vgs calibrate ...       = python -m vgs.tools.calibrate
vgs features images ... = python -m vgs.tools.extract_image_features (precomputed image features)
vgs prepare ...         = python -m vgs.data.prepare (import + featurise a corpus ahead of sweeps)
vgs report NAME         = python -m vgs.results.report (paper-style table and plots of a sweep)
vgs bench ...           = python -m vgs.tools.bench (training-step throughput vs the reference step)
vgs retrieve ...        = python -m vgs.results.retrieve (top images for a recording, captions for an image)
vgs embed ...           = python -m vgs.results.retrieve embed (a corpus's embeddings to Parquet)
vgs env [--json]        = python -m vgs.environment (versions, environment hash, CPU, commit)
"""

from __future__ import annotations

import importlib
import sys

from vgs.log import set_verbosity

COMMANDS = {
    "sweep": "vgs.sweep.cli",
    "train": "vgs.train",
    "synth": "vgs.data.synth",
    "models": "vgs.models.__main__",
    "calibrate": "vgs.tools.calibrate",
    "features": "vgs.tools.extract_image_features",
    "prepare": "vgs.data.prepare",
    "report": "vgs.results.report",
    "bench": "vgs.tools.bench",
    "retrieve": "vgs.results.retrieve",
    "embed": "vgs.results.retrieve",  # its `embed` command
    "env": "vgs.environment",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-q", "--quiet", "-v", "--verbose"):
        set_verbosity(0 if argv[0] in ("-q", "--quiet") else 2)
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"vgs: unknown command '{argv[0]}'", file=sys.stderr)
        print(__doc__, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "features":
        if argv[1:2] != ["images"]:
            print("usage: vgs features images --data ROOT --arch ARCH --weights FILE --out FILE", file=sys.stderr)
            return 2
        return importlib.import_module(COMMANDS["features"]).main(argv[2:])
    if argv[0] == "embed":
        return importlib.import_module("vgs.results.retrieve").main(["embed", *argv[1:]])
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

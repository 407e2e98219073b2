"""python -m vgs.models info NAME [NAME ...]: parameter counts as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from vgs.log import report_error
from vgs.models.registry import PAPER_PAIRS, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.models")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("info", help="print speech_params and image_params of named models")
    q.add_argument("names", nargs="*", help=f"default: the paper's pairs ({', '.join(PAPER_PAIRS)})")
    q.add_argument("--input-dim", type=int, default=40, help="MFCC dimensions (40 mortazavi, 39 chrupala)")
    a = p.parse_args(argv)
    try:
        rows = [info(n, a.input_dim) for n in (a.names or PAPER_PAIRS)]
    except ValueError as e:
        return report_error(e)
    print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

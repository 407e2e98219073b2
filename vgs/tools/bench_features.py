"""Featurisation throughput: MFCC utterances per second, per core, for a corpus.

    python -m vgs.tools.bench_features [--data DIR] [--preset mortazavi] [--workers 1,2] [--limit 4000]

Builds the speech feature store into a temporary folder (nothing of yours is touched) once per
worker count and prints utterances/s, utterances/s per worker and seconds of audio per second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

from vgs.cli_options import add_data
from vgs.config import DataConfig
from vgs.data.corpora import read_corpus
from vgs.data.features import build_speech_store
from vgs.data.prepare import ensure_builtin, resolve_paths
from vgs.log import get_logger, quiet

log = get_logger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgs.tools.bench_features", description=__doc__.split("\n\n")[0])
    add_data(p, default="the built-in corpus, generated if missing")
    p.add_argument("--preset", default="mortazavi")
    p.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="comma-separated worker counts")
    p.add_argument("--limit", type=int, default=4000, help="utterances to featurise (0: all)")
    a = p.parse_args(argv)
    cfg = resolve_paths(DataConfig(root=a.data or ""))
    if not a.data:
        ensure_builtin(cfg)  # the corpus only: featurising it here would be the very work measured
    corpus = read_corpus(cfg.root, cfg.layout, cfg.image_dir or None)
    if a.limit:
        corpus = dataclasses.replace(corpus, utterances=corpus.utterances[: a.limit])
    rows = []
    for workers in sorted({int(w) for w in a.workers.split(",")}):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.time()
            with quiet():
                store = build_speech_store(corpus, a.preset, tmp, workers=workers)
            seconds = time.time() - t
            hop = 0.0125 if a.preset == "mortazavi" else 0.010
            audio_s = float(store.lengths.sum()) * hop
        n = len(corpus.utterances)
        rows.append(
            {
                "workers": workers,
                "utterances": n,
                "seconds": round(seconds, 2),
                "utt_per_s": round(n / seconds, 1),
                "utt_per_s_per_worker": round(n / seconds / workers, 1),
                "audio_s_per_s": round(audio_s / seconds, 1),
            }
        )
        log.info(
            f"{a.preset}: {workers} worker(s): {n} utterances in {seconds:.1f} s = {n / seconds:.0f} utt/s "
            f"({n / seconds / workers:.0f} per worker), {audio_s / seconds:.0f} s of audio per second"
        )
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

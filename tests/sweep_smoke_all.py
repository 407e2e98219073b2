"""Run named sweeps at smoke size in one Ray session (used by tests/test_sweeps_smoke.py).

    python tests/sweep_smoke_all.py OUT_DIR PART
runs half PART (0 or 1) of the plan, so that two processes (two local Ray sessions, one MLflow
database each: OUT_DIR/mlflow-PART.db) keep both cores busy; prints one JSON line per sweep:
name, number of trials, statuses, metric, the metric values."""

import json
import sys
from pathlib import Path

from vgs.sweep.driver import run_sweep
from vgs.sweep.options import SweepOptions

# one caption per image per epoch: the paper-sized models of these cells train 64 utterances, not 320
# (builtin_val/test 0: a tenth each, where a sweep's YAML asks for 250-image splits of a larger corpus)
TINY = {
    "data.builtin_images": "80",
    "data.builtin_val": "0",
    "data.builtin_test": "0",
    "train.epochs": "1",
    "train.test_at_end": "false",
    "train.captions_per_image": "1",
}
# (sweep, picks, extra overrides): one or two cells of each table, one seed, one epoch
CPU_ONLY = {"cpu": 1, "gpu": 0}
PARTS = [
    [  # part 0: the three whose reports the test reads, and three more
        ("pipeline_vs_mtl", {"variant.model": ["pipe-seq/translations"]}, {"train.epochs": "2"}),
        ("downsampling", {"variant.model": ["mtl-transcribe"], "data.text_fraction": ["0.112"]}, {}),
        ("gru_layers_asr", {"model.asr.encoder_layers": ["3"]}, {}),
        ("hidden_size_asr", {"model.asr.hidden": ["512"]}, {}),
        # Mortazavi 2020 §5.2: a sample of the training images scored after every epoch
        ("schedulers", {"train.scheduler": ["cyclic"]}, {"train.eval_train_images": "8"}),
        ("sharing", {"variant.row": ["row12"]}, {}),  # here: part 1 is the longer without it
    ],
    [
        ("gru_layers_higy2020", {"variant.component": ["text-T1", "translate-3.1.1"]}, {}),
        ("gru_layers_slt", {"model.asr.encoder_layers": ["4"]}, {}),
        ("hidden_size", {"variant.model": ["mtl-transcribe-512"]}, {}),
        (
            "latent_dim",
            {"variant.pair": ["DG2A1024"]},
            {
                "data.image_resize": "40",
                "data.image_crop": "32",
                "model.image.blocks": "2-2-2-2",
                "train.batch_size": "16",
            },
        ),
        # the front-end axis: MFCCs beside a frozen SSL-shaped front-end whose states are cached
        ("frontends", {"variant.frontend": ["mfcc", "ssl-frozen-weighted"], "variant.head": ["gru"]}, {}),
    ],
]


def main(out: str, part: int) -> None:
    out_dir = Path(out)
    for name, picks, extra in PARTS[part]:
        summary = run_sweep(
            SweepOptions(
                name,
                storage=str(out_dir / f"ray-{part}"),
                tracking_uri=f"sqlite:///{out_dir / f'mlflow-{part}.db'}",
                overrides={**TINY, **extra},
                samples=1 if name == "gru_layers_higy2020" else None,
                picks=picks,
                seeds=[0],
                resources=CPU_ONLY,
                **({"scheduler": "none", "confirm": 0} if name == "frontends" else {}),  # one epoch: nothing to halve
            )
        )
        key = "val_" + summary["metric"][4:]
        print(
            json.dumps(
                {
                    "sweep": name,
                    "trials": len(summary["trials"]),
                    "status": sorted(t["status"] for t in summary["trials"]),
                    "metric": summary["metric"],
                    "values": [t.get(key) for t in summary["trials"]],
                    "pareto": sorted(summary["pareto"]),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""The GPU check runs where only PyTorch is: a training run and the check itself import no Ray,
MLflow, Optuna, soundfile or jiwer, and the check passes on a CPU (--device cpu --quick) from a
carried VGS_HOME copied elsewhere (new file times, as after a transfer)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

BLOCKED = ("ray", "mlflow", "optuna", "soundfile", "jiwer")
# importing any of these raises ImportError in the child (a None entry in sys.modules blocks it)
BLOCK = f"import sys\nfor m in {BLOCKED!r}: sys.modules[m] = None\n"


def _carried_home(tmp_path):
    from vgs.data.prepare import prepare, resolve_paths
    from vgs.tools.gpu_check import family_config

    home = tmp_path / "made"
    os.environ["VGS_HOME"], before = str(home), os.environ.get("VGS_HOME")
    try:
        prepare(resolve_paths(family_config("coembed", "cpu", "off").data))
    finally:
        if before is not None:
            os.environ["VGS_HOME"] = before
    carried = tmp_path / "carried"
    shutil.copytree(home, carried)  # copytree keeps times; touch them as a transfer would not keep them
    for path in carried.rglob("*"):
        os.utime(path, None)
    return carried


def test_a_training_run_imports_no_ray_mlflow_or_optuna(tmp_path):
    home = _carried_home(tmp_path)
    code = BLOCK + (
        "from vgs.train import main\n"
        "sys.exit(main(['--base', 'cpu-text', '--out', {!r}, 'data.builtin_images=60', "
        "'data.builtin_val=10', 'data.builtin_test=10', 'train.epochs=1', "
        "'train.captions_per_image=1']))\n"
    ).format(str(tmp_path / "run"))
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "VGS_HOME": str(home)},
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert (tmp_path / "run" / "best.pt").exists()


@pytest.mark.slow
def test_the_gpu_check_passes_on_a_cpu_from_a_carried_home(tmp_path):
    home = _carried_home(tmp_path)
    out = tmp_path / "out"
    code = BLOCK + "from vgs.tools.gpu_check import main\nsys.exit(main(sys.argv[1:]))\n"
    r = subprocess.run(
        [sys.executable, "-c", code, "--out", str(out), "--home", str(home), "--device", "cpu", "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["passed"] and [f["family"] for f in result["families"]] == [
        "coembed",
        "text-image",
        "asr",
        "slt",
        "pipe-ind",
        "pipe-seq",
        "mtl-transcribe",
        "mtl-translate",
        "mtl-match",
        "three-task",
    ]
    assert all(not f["problems"] and f["scores"] for f in result["families"])
    assert result["bench"]["bf16"]["configs"]["small"]["vgs_joint"] > 0
    assert result["ssl"]["arch"] == "ssl_tiny" and result["ssl"]["frozen_fp32_ms_per_s"] > 0  # --quick: the tiny one
    assert "PASSED" in (out / "gpu_check.txt").read_text()

"""A built wheel works outside the source tree: the named sweeps ship as package data."""

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_installed_wheel_finds_its_search_spaces_outside_the_source_tree(tmp_path, vgs_home, smoke_corpus):
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("vgs-*.whl"))
    # a fresh venv with vgs from the wheel only; the dependencies come from this venv's site-packages
    # through a .pth path line (the editable install of the source tree there is not processed)
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(purelib), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    (purelib / "deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n" + "\n".join(site.getsitepackages()) + "\n"
    )
    elsewhere = tmp_path / "elsewhere"  # no search_spaces/ folder here
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VGS_SEARCH_SPACES")}
    env["VGS_HOME"] = str(vgs_home)  # the session's smoke corpus (the dry run counts batches on it)
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import vgs.search_spaces.spec as s, vgs.results.papers as p; "
            "print(s.__file__); print(s.available()); print(sorted(p.PAPER))",
        ],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr[-3000:]
    assert where.stdout.startswith(str(purelib)), where.stdout  # the wheel's copy, not the source tree
    assert "'gru_layers'" in where.stdout and "'smoke'" in where.stdout
    assert "['downsampling', 'pipeline_vs_mtl', 'sharing']" in where.stdout  # the papers' numbers ship too
    run = subprocess.run(
        [str(python), "-m", "vgs.cli", "sweep", "smoke", "--dry-run"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "2 combinations x 1 seed(s)" in run.stdout and "asks Ray for 1 CPU" in run.stdout, run.stdout

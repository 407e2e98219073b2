"""Two processes that start the same preparation at once: one builds, the other waits and reuses
(they had crashed on each other's temporary files)."""

import json
import os
import subprocess
import sys

from vgs.data.locking import exclusive, process_alive

PREPARE = (
    "import sys; from vgs.config import DataConfig; from vgs.data.prepare import prepare; "
    "d = prepare(DataConfig(builtin_images=12, image_resize=40, image_crop=32)); "
    "print(d.speech.path, len(d.speech.ids))"
)


def test_two_processes_preparing_one_builtin_corpus_at_once_both_succeed(tmp_path):
    env = {**os.environ, "VGS_HOME": str(tmp_path / "home")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PREPARE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert outs[0][0] == outs[1][0] and outs[0][0].split()[1] == "60"  # the same store, 12 images x 5 captions
    corpora = list((tmp_path / "home" / "corpora").iterdir())
    assert [c.name for c in corpora if not c.name.startswith(".")] == ["builtin-v2-12img-seed0-split10-1-1"]
    assert json.loads((corpora[0].parent / "builtin-v2-12img-seed0-split10-1-1" / "corpus.json").read_text())


def test_exclusive_serialises_two_holders(tmp_path):
    lock = tmp_path / "x.lock"
    code = (
        "import sys, time; from vgs.data.locking import exclusive, process_alive\n"
        f"with exclusive({str(lock)!r}, announce=False):\n"
        "    print('in', flush=True); time.sleep(1.5)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "in"  # the other process holds the lock now
    import time

    t0 = time.time()
    with exclusive(lock, announce=False):
        waited = time.time() - t0
    other.wait(timeout=30)
    assert waited > 0.5


def test_process_alive_tells_a_live_process_from_a_gone_one():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_alive(os.getpid()) and not process_alive(child.pid)

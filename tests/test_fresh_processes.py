"""A fresh process per task, without re-importing the program's main script's libraries per task."""

import subprocess
import sys
import textwrap

import pytest

from vgs.data.fresh_processes import top_level_imports


def test_top_level_imports_are_the_scripts_own_not_its_functions():
    source = textwrap.dedent(
        """
        import os, json as j
        from vgs.sweep import driver
        from . import sibling
        try:
            import yaml
        except ImportError:
            import tomllib
        if True:
            from pathlib import Path
        def main():
            import torch
        """
    )
    assert top_level_imports(source) == ["os", "json", "vgs.sweep", "yaml", "tomllib", "pathlib"]
    # run as `python -m vgs.tools.x`: `from . import sibling` is vgs.tools.sibling
    assert top_level_imports(source, "vgs.tools")[3:5] == ["vgs.tools", "vgs.tools.sibling"]
    assert top_level_imports("from ..data import synth\n", "vgs.tools") == ["vgs.data"]


@pytest.mark.parametrize("how", ["path", "module"])
def test_a_scripts_imports_load_once_however_many_tasks(tmp_path, how):
    # a library whose import is counted (a line per import in a file), imported by a script that
    # runs six tasks each in a fresh process: the fork server imports it once for all of them
    (tmp_path / "counted_lib.py").write_text(f"open({str(tmp_path / 'imports')!r}, 'a').write('x\\n')\n")
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import counted_lib
            from vgs.data.fresh_processes import fresh_process_pool

            if __name__ == "__main__":
                with fresh_process_pool(2, []) as pool:
                    assert pool.map(abs, range(-5, 1)) == [5, 4, 3, 2, 1, 0]
                print("done")
            """
        )
    )
    command = [str(script)] if how == "path" else ["-m", "script"]  # python script.py, python -m script
    out = subprocess.run([sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr[-3000:]
    # the script itself, then the fork server; the six tasks' processes found it imported
    assert (tmp_path / "imports").read_text().count("x") == 2

"""docs/config-reference.md, generated from the schema: every dotted key with its type, default and
the comment the schema gives it.  `python -m vgs.config.reference > docs/config-reference.md`
regenerates it; tests/test_docs.py fails when the file and the schema differ."""

from __future__ import annotations

import dataclasses
import inspect
import io
import sys
import tokenize
from typing import Any

from vgs.config.schema import Config

HEADER = """# Configuration reference

Generated from `vgs/config/schema.py` by `python -m vgs.config.reference > docs/config-reference.md`;
do not edit by hand (tests/test_docs.py compares the two). Each key is set as
`key=value` on the command line, under `overrides:` or `space:` in a search-space YAML, and is an
MLflow parameter of every trial. How the keys work together: [configuration.md](configuration.md).
"""


def field_comments(cls: type) -> dict[str, str]:
    """name -> the comment of each field of a dataclass: the one on its line, else the comment lines
    right above it."""
    source = inspect.getsource(cls)
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip().split(":", 1)[0]
        if not name.isidentifier() or not line.startswith("    ") or line.startswith("     "):
            continue
        if number in comments and not line.strip().startswith("#"):
            found[name] = comments[number]
            continue
        above: list[str] = []
        k = number - 1
        while k in comments and lines[k - 1].strip().startswith("#"):
            above.insert(0, comments[k])
            k -= 1
        if above:
            found[name] = " ".join(above)
    return found


def rows(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, comment) of the leaf fields of one section (not its subsections)."""
    comments, instance = field_comments(cls), cls()
    return [
        (f"{prefix}{f.name}", str(f.type), shown(getattr(instance, f.name)), comments.get(f.name, ""))
        for f in dataclasses.fields(cls)
        if not dataclasses.is_dataclass(getattr(instance, f.name))
    ]


def cell(text: str) -> str:
    return text.replace("|", r"\|")  # a bar inside a table cell


def shown(value: Any) -> str:
    return '""' if value == "" else repr(value) if isinstance(value, str) else str(value)


def sections(cls: type = Config, prefix: str = "") -> list[tuple[str, str, type]]:
    """(dotted prefix, docstring, dataclass) of every section, depth first."""
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # the signature dataclass writes when there is no docstring
        doc = ""
    out = [(prefix, " ".join(doc.split()), cls)]
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out += sections(type(value), f"{prefix}{f.name}.")
    return out


def reference_markdown() -> str:
    parts = [HEADER]
    for prefix, doc, cls in sections():
        leaves = rows(cls, prefix)
        if not leaves:
            continue
        parts.append(f"## `{prefix.rstrip('.')}`\n" + (f"\n{doc}\n" if doc else ""))
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        parts += [f"| `{key}` | {kind} | `{default}` | {cell(text)} |" for key, kind, default, text in leaves]
        parts.append("")
    return "\n".join(parts)


def main() -> int:
    sys.stdout.write(reference_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

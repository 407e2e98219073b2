"""The documentation matches the code: the configuration reference is the schema's own, every link
and every "docs/FILE.md, "Heading"" reference in the code resolves, and CONTRIBUTING's layout names
every module."""

from __future__ import annotations

import re
from pathlib import Path

from vgs.config.reference import reference_markdown, rows, sections

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_configuration_reference_is_generated_from_the_schema():
    written = (ROOT / "docs/config-reference.md").read_text()
    assert written == reference_markdown(), "regenerate: python -m vgs.config.reference > docs/config-reference.md"
    undocumented = [key for _, _, cls in sections() for key, _, _, text in rows(cls) if not text]
    assert not undocumented, f"give these fields a comment in vgs/config/schema.py: {undocumented}"


def headings(markdown: str) -> set[str]:
    """Each heading's text, without its #s and its backticks."""
    return {m.strip().replace("`", "") for m in re.findall(r"^#+ (.+)$", markdown, re.M)}


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and file.suffix == ".md":
                if fragment not in {anchor(h) for h in headings(file.read_text())}:
                    broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def code_files() -> list[Path]:
    return sorted(
        p
        for p in [*ROOT.joinpath("vgs").rglob("*"), *ROOT.joinpath("scripts").rglob("*")]
        if p.suffix in (".py", ".yaml", ".sh") and "__pycache__" not in p.parts
    )


def test_every_docs_reference_in_the_code_names_a_file_and_heading_that_exist():
    """`docs/results.md, "Pruning against the grid"` in a comment or help text: the file exists and
    holds that heading (13 such references had pointed at README sections that moved to docs/)."""
    broken = []
    for file in code_files():
        text = file.read_text()
        for doc, heading in re.findall(r"(docs/[\w-]+\.md)(?:, \"([^\"\n]+)\")?", text):
            where = ROOT / doc
            if not where.exists():
                broken.append(f"{file.relative_to(ROOT)}: {doc} does not exist")
            elif heading and not any(h.startswith(heading.replace("`", "")) for h in headings(where.read_text())):
                broken.append(f"{file.relative_to(ROOT)}: {doc} has no heading '{heading}'")
        if re.search(r"\bREADME\b[,' ]*(?:\"|'|, \")[A-Z]", text):
            broken.append(f"{file.relative_to(ROOT)}: names a README section (the sections are in docs/)")
    assert not broken, "\n".join(broken)


def test_contributings_layout_names_every_module():
    layout = (ROOT / "CONTRIBUTING.md").read_text().split("## The layout", 1)[1].split("```")[1]
    modules = [
        p.relative_to(ROOT / "vgs")
        for p in (ROOT / "vgs").rglob("*.py")
        if p.stem not in ("__init__", "__main__") and "__pycache__" not in p.parts
    ]
    missing = [str(m) for m in modules if not re.search(rf"\b{re.escape(m.stem)}\b", layout)]
    assert not missing, f"CONTRIBUTING.md's layout does not name: {missing}"

"""docs/design.md is the design of record: every section of it cited in the code and the docs (as
`docs/design.md#layers`) exists, and nothing points at a design file outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SKIP = {".venv", "wheelhouse", "build", "dist", ".git", "node_modules"}
#: A citation of a section, `docs/design.md#layers`; more sections of one citation follow as `, #x`.
CITATION = re.compile(r"docs/design\.md#([a-z0-9-]+)((?:, #[a-z0-9-]+)*)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors() -> set[str]:
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", DESIGN.read_text(), re.M)}


def _sources():
    for path in ROOT.rglob("*"):
        if path.suffix in (".py", ".md", ".toml", ".cfg", ".tmpl") and not SKIP & set(path.relative_to(ROOT).parts):
            yield path


def citations() -> list[tuple[str, str]]:
    """(file, section) of every citation in the repository's code and docs."""
    found = []
    for path in _sources():
        for m in CITATION.finditer(path.read_text(errors="replace")):
            for section in [m[1], *re.findall(r"#([a-z0-9-]+)", m[2])]:
                found.append((str(path.relative_to(ROOT)), section))
    return found


def test_the_slugs_are_githubs():
    assert _slug("Run record") == "run-record" and _slug("Layers") == "layers"


def test_the_design_is_short_and_has_its_sections():
    text = DESIGN.read_text()
    assert len(text.splitlines()) < 320
    assert {"layout", "layers", "dataset", "contracts", "compare", "run-record"} <= anchors()


def test_every_cited_section_exists():
    cited = citations()
    assert len(cited) > 50, "the code cites the design"
    missing = [(f, s) for f, s in cited if s not in anchors()]
    assert missing == []


def test_nothing_points_outside_the_repository():
    stale = re.compile(r"DESIGN section|DESIGN sections|shared/DESIGN\.md")
    offenders = [
        str(p.relative_to(ROOT))
        for p in _sources()
        if p.name != "test_design_doc.py" and stale.search(p.read_text(errors="replace"))
    ]
    assert offenders == []

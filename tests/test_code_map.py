"""The house rules a reader relies on (docs/ARCHITECTURE.md): tests mirror the tree, and modules
stay short enough to read.

- Every module under ``backend/`` has a test file of its name in the mirrored folder
  (``backend/invoicing/panel.py`` → ``tests/invoicing/test_panel*.py``), or says in its
  docstring where it is tested ("Tested in …" / "Covered by …").
- No module is longer than ``MAX_LINES`` without the reason written at its top, as a comment
  line starting with ``# Longer than 500 lines:`` in its first 15 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
COVERAGE_WORDS = ("tested in", "covered by", "tested by", "tested through")


def _modules(*packages: str) -> list[Path]:
    found: list[Path] = []
    for package in packages:
        if (ROOT / package).is_file():
            found.append(ROOT / package)
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            found.append(path)
    return found


def _mirrored_tests(module: Path) -> list[Path]:
    relative = module.relative_to(ROOT / "backend")
    folder = ROOT / "tests" / relative.parent
    return sorted(folder.glob(f"test_{module.stem}*.py"))


def _says_where_tested(module: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(module.read_text())) or ""
    flat = " ".join(docstring.lower().split())
    return any(words in flat for words in COVERAGE_WORDS)


def test_every_backend_module_has_its_test_file_or_says_where_it_is_tested() -> None:
    untested = [
        str(module.relative_to(ROOT))
        for module in _modules("backend")
        if not _mirrored_tests(module) and not _says_where_tested(module)
    ]
    assert untested == [], (
        "each module needs tests/<same folders>/test_<module>.py, or a docstring line saying "
        f"where it is tested ('Tested in tests/…'): {untested}"
    )


def test_no_module_is_longer_than_500_lines_without_saying_why() -> None:
    too_long = []
    for module in _modules("backend", "console", "models", "scheduler.py"):
        lines = module.read_text().splitlines()
        if len(lines) <= MAX_LINES:
            continue
        if not any(line.startswith("# Longer than 500 lines:") for line in lines[:15]):
            too_long.append(f"{module.relative_to(ROOT)} ({len(lines)} lines)")
    assert too_long == [], f"split these, or write why they are long at their top: {too_long}"


def test_the_rules_see_the_tree() -> None:
    # Guards the two tests above against passing on an empty walk (a moved root, a typo).
    modules = _modules("backend")
    assert len(modules) > 50
    assert any(_mirrored_tests(m) for m in modules)
    panel = ROOT / "backend" / "invoicing" / "panel.py"
    assert _mirrored_tests(panel) == [ROOT / "tests" / "invoicing" / "test_panel.py"]

"""The import rules of DESIGN.md §2 are enforced by import-linter; prove the contracts bite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(tree / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for pkg in ("drgnet", "db", "feedback", "webapp"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_current_tree_keeps_the_contracts(tree: Path):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("drgnet/_bad.py", "import db\n", "The ML core imports none of db, feedback, webapp"),
        ("db/_bad.py", "import torch\n", "Persistence imports nothing of ours and no torch"),
        ("webapp/_bad.py", "import drgnet.cli\n", "The web app uses only inference and labels"),
    ],
)
def test_a_forbidden_import_breaks_the_build(tree: Path, module: str, line: str, contract: str):
    (tree / module).write_text(line)
    result = _lint(tree)
    assert result.returncode != 0
    assert contract in result.stdout

"""The code passes its linter, formatter and type checker (configured in pyproject.toml), as
CI runs them: a change that breaks one fails here, not in a reviewer's eye."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["voiced", "tests", "bench", "protos"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *CHECKED],
        ["ruff", "format", "--check", *CHECKED],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_the_code_passes(command):
    tool = [sys.executable, "-m", *command]
    child = subprocess.run(tool, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert child.returncode == 0, (child.stdout + child.stderr)[-4000:]

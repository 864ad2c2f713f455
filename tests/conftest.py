"""Shared fixtures: the checkout, a disposable copy of it, and the CLI run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of images/ and recipes/ that a test may break."""
    for name in ("images", "recipes"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def cryostack(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the console script in a fresh interpreter, exactly as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cryostack.cli", *args],
        cwd=cwd, capture_output=True, text=True, env=env, check=False,
    )

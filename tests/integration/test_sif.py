"""SIF files from built images with a real Apptainer, smoke-tested inside the SIF."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import cryostack, make_hello_project

pytestmark = pytest.mark.docker


def test_sif_is_built_smoke_tested_and_recorded(tmp_path: Path, base_image, trixie_base):
    root = make_hello_project(tmp_path, {"hello": ("-O2", "hello {version}")})
    built = cryostack("--root", str(root), "build")
    assert built.returncode == 0, built.stdout + built.stderr

    first = cryostack("--root", str(root), "sif")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "smoke test passed" in first.stdout
    entry = json.loads((root / "build" / "record.json").read_text())["images"]["hello/1.0/gcc-cpu"]
    sif = Path(entry["sif"]["path"])
    assert sif.is_file() and sif.name == f"{entry['fingerprint'][:12]}.sif"
    assert sif.read_bytes()[32:41] == b"SIF_MAGIC", "a real SIF file (its global header)"
    assert entry["sif"]["size"] == sif.stat().st_size and len(entry["sif"]["sha256"]) == 64
    assert [p.name for p in sif.parent.iterdir()] == [sif.name], "no temporary file is left beside the SIF"

    mtime = os.stat(sif).st_mtime_ns
    second = cryostack("--root", str(root), "sif")
    assert second.returncode == 0 and "up to date" in second.stdout
    assert os.stat(sif).st_mtime_ns == mtime


def test_sif_of_an_image_that_is_not_built_is_an_error(tmp_path: Path, engine):
    root = make_hello_project(tmp_path, {"neverbuilt": ("-O2", "hello {version}")})
    result = cryostack("--root", str(root), "sif")
    assert result.returncode == 1
    assert "not built and verified (run `cryostack build --only neverbuilt/1.0/gcc-cpu`)" in result.stdout
    assert "no built image to convert" in result.stderr

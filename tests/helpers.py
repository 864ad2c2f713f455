"""Helpers shared by the tests: the checkout's root, the CLI as a user runs it, the test project."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "tests" / "data" / "hello"
# name -> (compiler flags, smoke expectation): one good family and three that must fail verification.
FAMILIES = {
    "hello": ("-O2", "hello {version}"),
    "broken": ("-DBROKEN", "hello {version}"),          # does not compile
    "badsmoke": ("-O2", "hello {version}-nope"),         # smoke output does not match
    "nolib": ("-O2 -fopenmp", "hello {version}"),        # needs libgomp, absent from the runtime stage
    "other": ("-O3", "hello {version}"),                 # a second good image
}



def cryostack(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the console script in a fresh interpreter, exactly as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cryostack.cli", *args],
        cwd=cwd, capture_output=True, text=True, env=env, check=False,
    )


def hello_tarball(dest: Path) -> str:
    """hello-1.0.tar.gz with fixed metadata (same bytes every time); returns its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name in ("hello.c", "Makefile"):
            data = (HELLO / "src" / name).read_bytes()
            info = tarfile.TarInfo(f"hello-1.0/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    dest.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def make_hello_project(root: Path, families=FAMILIES) -> Path:
    """A cryostack project with the shipped common layouts and the test families."""
    (root / "images").mkdir(parents=True)
    shutil.copytree(ROOT / "recipes" / "common", root / "recipes" / "common")
    shutil.copy(ROOT / "recipes" / "hadolint.yaml", root / "recipes" / "hadolint.yaml")
    shutil.copytree(HELLO / "recipes" / "hello", root / "recipes" / "hello")
    mirror = root / ".cache" / "sources"
    mirror.mkdir(parents=True)
    sha = hello_tarball(mirror / "hello-1.0.tar.gz")
    template = (HELLO / "family.yaml.in").read_text()
    for name, (flags, expect) in families.items():
        text = template.replace("@NAME@", name).replace("@FLAGS@", flags)
        (root / "images" / f"{name}.yaml").write_text(text.replace("@EXPECT@", expect).replace("@SHA256@", sha))
    return root

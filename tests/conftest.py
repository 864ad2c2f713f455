"""Fixtures: a disposable copy of the checkout, and the real services integration tests use."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cryostack.baseimage import make_base_image
from cryostack.engine.docker import DockerEngine
from cryostack.errors import BuildError
from cryostack.settings import LOCAL_DEBIAN
from helpers import FAMILIES, ROOT, make_hello_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of images/ and recipes/ that a test may break."""
    for name in ("images", "recipes"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def _unavailable(reason: str):
    # In CI the set-up starts every service, so a missing one is a failure, not a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    try:
        return DockerEngine.connect()
    except BuildError as exc:
        _unavailable(f"needs a Docker engine: {exc}")


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine, tmp_path_factory) -> str:
    """The local Debian base image, made with debootstrap if this engine does not have it yet."""
    work = tmp_path_factory.mktemp("base")
    make_base_image(engine, LOCAL_DEBIAN, "bookworm", work, work / "debootstrap.log")
    return LOCAL_DEBIAN


@pytest.fixture(scope="session")
def hello_project(tmp_path_factory, engine: DockerEngine, base_image: str):
    root = make_hello_project(tmp_path_factory.mktemp("hello"))
    yield root
    for name in FAMILIES:
        for image in engine.client.images.list(name=f"cryostack/{name}"):
            for tag in image.tags:
                engine.untag(tag)


@pytest.fixture(scope="session")
def trixie_base(engine: DockerEngine, tmp_path_factory) -> str:
    """Debian trixie, the base of the containerised Apptainer (made with debootstrap if missing)."""
    work = tmp_path_factory.mktemp("trixie")
    make_base_image(engine, "local/debian:trixie", "trixie", work, work / "debootstrap.log")
    return "local/debian:trixie"

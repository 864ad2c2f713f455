"""Fixtures: a disposable copy of the checkout, and the real services integration tests use."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 from an authenticating registry is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {seconds}s")


@pytest.fixture(scope="session")
def moto_ecr(tmp_path_factory):
    """A moto server for the ECR control API; returns the environment that points boto3 at it."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        _unavailable("needs moto_server (pip install 'moto[server]')")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    wait_for_http(f"http://127.0.0.1:{port}/")
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1"}
    yield env
    server.terminate()
    server.wait()


@dataclass
class LocalRegistry:
    url: str
    username: str
    password: str
    readonly_url: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory, moto_ecr) -> LocalRegistry:
    """Debian's docker-registry on 127.0.0.1 with htpasswd users: a tester, and ECR's user with the
    token moto hands out (so pushes 'to ECR' land here). A read-only twin serves the same storage."""
    binary, htpasswd = shutil.which("docker-registry"), shutil.which("htpasswd")
    if not binary or not htpasswd:
        _unavailable("needs docker-registry and htpasswd (apt-get install docker-registry apache2-utils)")
    import base64
    import boto3
    token = boto3.client("ecr", endpoint_url=moto_ecr["AWS_ENDPOINT_URL"], region_name=moto_ecr["AWS_REGION"],
                         aws_access_key_id="testing", aws_secret_access_key="testing").get_authorization_token()
    ecr_user, _, ecr_password = base64.b64decode(token["authorizationData"][0]["authorizationToken"]).decode().partition(":")
    work = tmp_path_factory.mktemp("registry")
    users = [("tester", "s3cret-pass"), (ecr_user, ecr_password)]
    (work / "htpasswd").write_text("".join(
        subprocess.run([htpasswd, "-Bbn", user, password], capture_output=True, text=True, check=True).stdout.strip() + "\n"
        for user, password in users))
    servers, urls = [], []
    for readonly in (False, True):
        port = free_port()
        config = work / f"config-{port}.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
            f"  maintenance:\n    readonly:\n      enabled: {str(readonly).lower()}\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            f"auth:\n  htpasswd:\n    realm: cryostack-tests\n    path: {work / 'htpasswd'}\n")
        log = open(work / f"registry-{port}.log", "w")
        servers.append(subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT))
        wait_for_http(f"http://127.0.0.1:{port}/v2/")
        urls.append(f"127.0.0.1:{port}")
    yield LocalRegistry(urls[0], "tester", "s3cret-pass", urls[1])
    for server in servers:
        server.terminate()
        server.wait()

"""The real Docker builder reads hostile catalogue text in a rendered Dockerfile as exactly that
text: the LABEL and ENV instructions cryostack renders are built (FROM scratch, nothing to
download) and the image's labels and environment compared with the catalogue."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.settings import BuildSettings
from helpers import ROOT

pytestmark = pytest.mark.docker

HOSTILE = [
    "it's \"quoted\" $(touch /tmp/cryostack-escape-marker) `touch /tmp/cryostack-escape-marker` ${HOME} $HOME $",
    "%setup --privileged -- ../../etc/passwd ; && | # = é 日本 {{ 7*7 }}",
    "\"\"'' $$ $( ` ${ }",
]


def _logical_lines(dockerfile: str):
    current = ""
    for line in dockerfile.split("\n"):
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        yield current + line
        current = ""


@pytest.mark.parametrize("text", HOSTILE)
def test_docker_reads_rendered_labels_and_environment_as_the_catalogue_says(engine, tmp_path: Path, text: str):
    for name in ("images", "recipes"):
        shutil.copytree(ROOT / name, tmp_path / name)
    path = tmp_path / "images" / "relion.yaml"
    data = yaml.safe_load(path.read_text())
    data["description"] = text
    data["licence"]["name"] = text[::-1]
    data["versions"]["5.0.1"]["model_weights"]["torch_home"] = "/efs/-x/@y,z=1:2+3%4"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    image = planned_images(Project(tmp_path), BuildSettings(), "relion/5.0.1/gcc-cuda86")[0]
    kept = [line for line in _logical_lines(image.files["Dockerfile"]) if line.startswith(("ENV ", "LABEL "))]
    assert len(kept) == 2, kept
    dockerfile = "FROM scratch\n" + "\n".join(kept) + "\n"
    tag = f"cryostack-test/escaping:{os.getpid()}"
    docker = shutil.which("docker", path="/usr/bin") or "docker"
    built = subprocess.run([docker, "build", "-q", "-t", tag, "-"], input=dockerfile, text=True, capture_output=True,
                           env=dict(os.environ, DOCKER_BUILDKIT="1"))
    try:
        assert built.returncode == 0, built.stderr
        config = json.loads(subprocess.run([docker, "inspect", tag], capture_output=True, text=True, check=True).stdout)[0]["Config"]
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True)
    assert config["Labels"]["org.opencontainers.image.description"] == text
    assert config["Labels"]["org.opencontainers.image.licenses"] == text[::-1]
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert environment["TORCH_HOME"] == "/efs/-x/@y,z=1:2+3%4"
    assert environment["PATH"].startswith("/opt/relion/bin:")  # the recipe's $PATH still expands
    assert not Path("/tmp/cryostack-escape-marker").exists()

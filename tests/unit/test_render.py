"""Rendering: every entry renders, output is deterministic and matches the golden files, and the
Apptainer definition does exactly what the Dockerfile does."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.plan import write_rendered
from cryostack.settings import BuildSettings
from helpers import ROOT

GOLDEN = ROOT / "tests" / "data" / "golden"
# One entry per family, plus the CUDA and oneAPI flavours of RELION.
GOLDEN_KEYS = [
    "relion/3.1.3/gcc-cpu",
    "relion/5.0.1/gcc-cuda86",
    "relion/5.0.1/oneapi-cpu-avx512",
    "ctffind/4.1.14/gcc-cpu",
    "cryolo/1.9.9/cuda",
    "chimera/1.17.3/cpu",
]


@pytest.fixture(scope="module")
def shipped():
    return {image.target.key: image for image in planned_images(Project(ROOT), BuildSettings(), None)}


@pytest.mark.parametrize("key", GOLDEN_KEYS)
def test_rendered_text_matches_golden_files(shipped, key):
    for name, text in shipped[key].files.items():
        golden = GOLDEN / key / name
        if os.environ.get("CRYOSTACK_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert golden.is_file(), f"no golden file {golden}; run with CRYOSTACK_UPDATE_GOLDEN=1 and review it"
        assert text == golden.read_text(), f"{key}/{name} differs from {golden}"


def test_render_twice_gives_byte_identical_files(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        write_rendered(planned_images(Project(ROOT), BuildSettings(), None), out)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    # Images that need CPU features also get their start-up guard.
    assert {f.name for f in files} == {"Dockerfile", "apptainer.def", "build.sh", "target.json", "cpu-guard.sh"}
    guarded = {p.parent.relative_to(first).as_posix() for p in first.rglob("cpu-guard.sh")}
    assert guarded == {i.target.key for i in planned_images(Project(ROOT), BuildSettings(), None)
                       if i.target.variant.cpu_features}
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_variant_choices_reach_the_build(shipped):
    cuda75 = shipped["relion/5.0.1/gcc-cuda75"].files["build.sh"]
    cuda86 = shipped["relion/5.0.1/gcc-cuda86"].files["build.sh"]
    cpu = shipped["relion/3.1.3/gcc-cpu"].files["build.sh"]
    oneapi = shipped["relion/3.1.3/oneapi-cpu-avx512"].files["build.sh"]
    assert "-DCUDA=ON -DCUDA_ARCH=75" in cuda75 and "-DCUDA_ARCH=86" in cuda86
    assert "-DALTCPU=ON" in cpu and "-DCUDA=OFF" in cpu and "icpx" not in cpu
    assert "-DCMAKE_CXX_COMPILER=icpx" in oneapi and "-DMKLFFT=ON" in oneapi and "-xCORE-AVX512" in oneapi
    assert "-DFETCH_WEIGHTS=OFF" in cuda86 and "-DFETCH_WEIGHTS=OFF" not in cpu
    assert "TORCH_HOME=" in shipped["relion/5.0.1/gcc-cuda86"].files["Dockerfile"]
    assert "GUI=OFF" in cpu


def test_base_images_are_parameters(tmp_path: Path):
    settings = BuildSettings(base_image="site.example/debian:bookworm-20250520", python_image="mirror/python:3.8")
    images = {i.target.key: i for i in planned_images(Project(ROOT), settings, "relion/3.1.3/gcc-cpu,cryolo/*/cpu")}
    relion = images["relion/3.1.3/gcc-cpu"].files
    assert "FROM site.example/debian:bookworm-20250520 AS build" in relion["Dockerfile"]
    assert "Bootstrap: docker\nFrom: site.example/debian:bookworm-20250520" in relion["apptainer.def"]
    assert "FROM mirror/python:3.8 AS runtime" in images["cryolo/1.9.9/cpu"].files["Dockerfile"]


# --- the Apptainer definition is the Dockerfile's equivalent, stage by stage -----------------

def _join_continuations(text: str) -> list:
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def _docker_stages(text: str) -> list:
    stages = []
    for line in _join_continuations(text):
        word, _, rest = line.partition(" ")
        if word == "FROM":
            image, _, name = rest.partition(" AS ")
            stages.append({"name": name, "from": image, "run": [], "copy_from": [], "env": {}, "labels": {}})
        elif word == "RUN":
            stages[-1]["run"].append(rest.strip())
        elif word == "COPY" and rest.startswith("--from="):
            stage, src, dst = rest[len("--from="):].split()
            stages[-1]["copy_from"].append((stage, src, dst))
        elif word == "COPY":
            src, dst = rest.split()
            stages[-1]["run"].insert(0, f"copy {src.rstrip('/')} {dst.rstrip('/')}")
        elif word == "ENV":
            stages[-1]["env"].update(re.findall(r'(\w+)="([^"]*)"', rest))
        elif word == "LABEL":
            stages[-1]["labels"].update(re.findall(r'([\w.-]+)="([^"]*)"', rest))
    return stages


def _apptainer_stages(text: str) -> list:
    stages, section = [], None
    for line in _join_continuations(text):
        if line.startswith("Bootstrap:"):
            stages.append({"run": [], "copy_from": [], "env": {}, "labels": {}})
        elif line.startswith("From:"):
            stages[-1]["from"] = line.split(":", 1)[1].strip()
        elif line.startswith("Stage:"):
            stages[-1]["name"] = line.split(":", 1)[1].strip()
        elif line.startswith("%"):
            section = line[1:].strip()
        elif line.strip() and not line.startswith("#"):
            body = line.strip()
            if section == "post":
                stages[-1]["run"].append(body)
            elif section == "files":
                src, dst = body.split()
                stages[-1]["run"].insert(0, f"copy {src} {dst}")
            elif section.startswith("files from"):
                src, dst = body.split()
                stages[-1]["copy_from"].append((section.split()[-1], src, dst))
            elif section == "environment":
                name, value = re.match(r'export (\w+)="([^"]*)"', body).groups()
                stages[-1]["env"][name] = value
            elif section == "labels":
                name, _, value = body.partition(" ")
                stages[-1]["labels"][name] = value
    return stages


def _normalise_run(stage: dict) -> dict:
    # BuildKit's cache mounts keep apt's lists and archives out of the image, so the Dockerfile
    # neither mounts anything in Apptainer nor needs the clean-up that %post does: both are left
    # out of the comparison; every other command must be the same.
    def command(run: str) -> str:
        run = re.sub(r"--mount=\S+\s*", "", run)
        run = run.replace(" && apt-get clean && rm -rf /var/lib/apt/lists/*", "")
        return re.sub(r"\s+", " ", run).strip()
    return dict(stage, run=[command(r) for r in stage["run"]])


@pytest.mark.parametrize("key", GOLDEN_KEYS + ["relion/3.1.3/oneapi-cpu-avx512", "cryolo/1.9.9/cpu"])
def test_apptainer_definition_is_equivalent_to_the_dockerfile(shipped, key):
    files = shipped[key].files
    docker = [_normalise_run(s) for s in _docker_stages(files["Dockerfile"])]
    apptainer = [_normalise_run(s) for s in _apptainer_stages(files["apptainer.def"])]
    assert [s["name"] for s in docker] == [s["name"] for s in apptainer] == ["build", "runtime"]
    for d, a in zip(docker, apptainer):
        assert d["from"] == a["from"]
        assert d["run"] == a["run"], f"{key} stage {d['name']}: RUN vs %post differ"
        assert d["copy_from"] == a["copy_from"]
        # Docker expands $PATH at build time from the base image; Apptainer at run time: same text.
        assert d["env"] == a["env"]
        assert d["labels"] == a["labels"]
    assert docker[-1]["labels"]["io.cryostack.variant"] == key.split("/")[2]

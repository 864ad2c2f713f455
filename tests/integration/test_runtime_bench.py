"""`bench --runtime`: the same RELION 2D classification in every built CPU image, in turns.

The contenders are the RELION 5.0.1 CPU image and two images made from it under other variant
names in a copy of the catalogue: one that is the same program (its results must agree, its time
is near the baseline's) and one whose relion_refine reads every particle 10 % too bright, as a
broken build would, which must be reported as computing something else.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import cryostack, edit_yaml

pytestmark = pytest.mark.docker

RELION = "relion/5.0.1/gcc-cpu"
TAG = "cryostack/relion:5.0.1-gcc-cpu"
SAME, SKEWED = "cryostack/relion:5.0.1-gcc-cpu-same", "cryostack/relion:5.0.1-gcc-cpu-skewed"

# A relion_refine ahead of the real one on PATH that computes wrong numbers, as a broken build would:
# every particle it reads comes out 10 % too bright.
SKEW = """#!/bin/bash
set -e
relion_image_handler --i particles.mrcs --o skewed.mrcs --multiply_constant 1.1 >/dev/null
sed 's/@particles[.]mrcs/@skewed.mrcs/' particles.star > skewed.star
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --i ]; then args+=(--i skewed.star); shift 2; else args+=("$1"); shift; fi
done
exec /opt/relion/bin/relion_refine "${args[@]}"
"""


@pytest.fixture(scope="module")
def relion_cpu_image(tmp_path_factory) -> str:
    """The RELION 5.0.1 CPU image (built through the project in CI; locally it must exist)."""
    if subprocess.run(["docker", "image", "inspect", TAG], capture_output=True).returncode != 0:
        if os.environ.get("CI") != "true":
            pytest.skip(f"needs {TAG} (`invoke build --only {RELION}`, about 30 minutes cold)")
        build_dir = tmp_path_factory.mktemp("relion-build")
        result = cryostack("build", "--only", RELION, "--build-dir", str(build_dir))
        assert result.returncode == 0, result.stdout + result.stderr
    return TAG


@pytest.fixture(scope="module")
def contenders(relion_cpu_image, tmp_path_factory):
    """A catalogue with only 5.0.1 and the variants gcc-cpu, gcc-cpu-same and gcc-cpu-skewed, each built."""
    work = tmp_path_factory.mktemp("race")
    root = work / "project"
    for name in ("images", "recipes"):
        shutil.copytree(Path(__file__).parents[2] / name, root / name)

    def only_501(data):
        data["versions"] = {"5.0.1": data["versions"]["5.0.1"]}
        data["variants"]["gcc-cpu-same"] = dict(data["variants"]["gcc-cpu"])
        data["variants"]["gcc-cpu-skewed"] = dict(data["variants"]["gcc-cpu"])
        data["versions"]["5.0.1"]["variants"] = ["gcc-cpu", "gcc-cpu-same", "gcc-cpu-skewed"]

    edit_yaml(root / "images" / "relion.yaml", only_501)
    subprocess.run(["docker", "tag", relion_cpu_image, SAME], check=True)
    context = work / "skewed"
    context.mkdir()
    (context / "relion_refine").write_text(SKEW)
    (context / "relion_refine").chmod(0o755)  # COPY keeps the mode (the classic builder has no --chmod)
    (context / "Dockerfile").write_text(f"FROM {relion_cpu_image}\nCOPY relion_refine /opt/skew/relion_refine\n"
                                        'ENV PATH="/opt/skew:$PATH"\n')
    subprocess.run(["docker", "build", "-q", "-t", SKEWED, str(context)], check=True, capture_output=True)
    yield root
    subprocess.run(["docker", "rmi", SAME, SKEWED], capture_output=True)


def line_of(text: str, key: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(f"2D classification in {key}:")]
    assert len(found) == 1, text
    return found[0]


def test_every_cpu_image_runs_in_turns_and_a_different_result_is_reported(contenders):
    result = cryostack("--root", str(contenders), "bench", "--runtime", "--baseline", RELION)
    text = result.stdout
    # The skewed image computes another classification: printed, then the bench fails.
    assert result.returncode == 1, text + result.stderr
    assert "computed another result" in result.stderr and "Traceback" not in result.stderr
    baseline = line_of(text, RELION)
    assert re.search(r": median \d+\.\d s \(\d+\.\d, \d+\.\d s\); 1\.00x relion/5\.0\.1/gcc-cpu \(baseline\); "
                     r"log-likelihood \d", baseline), baseline
    same = line_of(text, "relion/5.0.1/gcc-cpu-same")
    ratio = float(re.search(r"; (\d+\.\d\d)x relion/5\.0\.1/gcc-cpu;", same).group(1))
    assert "agrees with the baseline's (0.00 %" in same, same   # the same program, the same numbers
    assert "log-likelihood 0.00 % apart" in same, same
    assert 0.5 < ratio < 2.0, same                              # and about the same time
    skewed = line_of(text, "relion/5.0.1/gcc-cpu-skewed")
    assert "DIFFERS" in skewed, skewed


def test_an_unknown_baseline_is_refused_in_one_line(contenders):
    result = cryostack("--root", str(contenders), "bench", "--runtime", "--baseline", "relion/9.9/gcc-cpu")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--baseline relion/9.9/gcc-cpu" in result.stderr, result.stderr
    assert "relion/5.0.1/gcc-cpu-same" in result.stderr  # it lists what can be chosen

"""The task map a maintainer sees, and the selector grammar of --only."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cryostack.errors import InputError
from cryostack.catalogue import load_catalogue
from cryostack.plan import expand, select
from helpers import ROOT, cryostack


def test_invoke_list_shows_each_task_with_help():
    result = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if re.match(r"^  \S", line)}
    for name in ("render", "matrix", "lint", "test"):
        assert name in listed and len(listed[name].split()) > 2, f"{name} has no help line"


@pytest.mark.parametrize("only, expected", [
    ("ctffind", {"ctffind/4.1.14/gcc-cpu"}),
    ("relion/3.1.3", {"relion/3.1.3/gcc-cpu", "relion/3.1.3/oneapi-cpu-avx512"}),
    ("relion/*/gcc-cuda*", {f"relion/{v}/gcc-cuda{a}" for v in ("4.0.1", "5.0.1") for a in (75, 86)}),
    ("relion/5.0.1/gcc-cpu,ctffind", {"relion/5.0.1/gcc-cpu", "ctffind/4.1.14/gcc-cpu"}),
    ("*/*/cpu", {"cryolo/1.9.9/cpu", "chimera/1.17.3/cpu"}),
])
def test_selectors(only, expected):
    targets = expand(load_catalogue(ROOT / "images"))
    assert {t.key for t in select(targets, only)} == expected


def test_selector_that_matches_nothing_lists_what_exists():
    targets = expand(load_catalogue(ROOT / "images"))
    with pytest.raises(InputError, match=r"--only 'relion/9\.9': matches no matrix entry \(entries: chimera/1\.17\.3/cpu, "):
        select(targets, "relion/9.9")


def test_matrix_json_is_what_ci_shards_on():
    result = cryostack("matrix", "--json")
    assert result.returncode == 0, result.stderr
    entries = {e["key"]: e for e in json.loads(result.stdout)}
    assert set(entries) == {t.key for t in expand(load_catalogue(ROOT / "images"))}
    g5 = entries["relion/5.0.1/gcc-cuda86"]
    assert g5["targets"] == ["g5"] and g5["cuda_arch"] == 86 and g5["blocked"] is None
    assert g5["image"] == "cryostack/relion:5.0.1-gcc-cuda86" and len(g5["fingerprint"]) == 64
    assert "no sha256 pin" in entries["chimera/1.17.3/cpu"]["blocked"]


def test_matrix_table_shows_status_and_reasons():
    result = cryostack("matrix")
    assert result.returncode == 0
    row = next(line for line in result.stdout.splitlines() if "3.1.3" in line and "gcc-cpu" in line)
    assert "buildable" in row
    assert "[1] source chimera-1.17.3-linux_x86_64_osmesa.bin has no sha256 pin" in result.stdout


def test_a_reader_that_stops_early_gets_no_error_message():
    """`cryostack matrix | head -1`: the closed pipe ends the command quietly, like any Unix filter."""
    result = subprocess.run(f"{sys.executable} -m cryostack matrix --json | true; echo $" + "{PIPESTATUS[0]}",
                            shell=True, executable="/bin/bash", cwd=ROOT, capture_output=True, text=True)
    assert result.stderr == ""
    assert result.stdout.strip() == "141"


def _tasks(program: list) -> list:
    listed = subprocess.run([*program, "--list"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if re.match(r"^  \S", line)]


INVOKE = [sys.executable, "-m", "invoke"]
CONSOLE = [sys.executable, "-m", "cryostack"]


def test_both_front_doors_offer_the_same_tasks_with_the_same_help():
    """`invoke` and `cryostack` serve one collection: same names, options and help (invoke adds `test`)."""
    console_tasks = _tasks(CONSOLE)
    assert set(_tasks(INVOKE)) - set(console_tasks) == {"test"}
    for name in console_tasks:
        helps = []
        for program in (INVOKE, CONSOLE):
            shown = subprocess.run([*program, "--help", name], cwd=ROOT, capture_output=True, text=True)
            assert shown.returncode == 0, shown.stderr
            helps.append(re.sub(r"^Usage: \S+", "Usage: PROGRAM", shown.stdout))
        assert helps[0] == helps[1], name
        assert "--" in helps[0], f"{name} shows no options"


@pytest.mark.parametrize("program", [INVOKE, CONSOLE], ids=["invoke", "cryostack"])
def test_a_real_task_runs_through_each_front_door(program, tmp_path):
    key = expand(load_catalogue(ROOT / "images"))[0].key
    result = subprocess.run([*program, "render", "--only", key, "--build-dir", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / key / "Dockerfile").is_file()


def test_an_unknown_option_is_bad_input():
    result = subprocess.run([*CONSOLE, "build", "--jbos", "2"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("cryostack: error: ") and "--jbos" in result.stderr


def test_the_readme_task_table_lists_exactly_the_tasks():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Tasks", 1)[1].split("\n## ", 1)[0]
    documented = {re.match(r"\| `([\w.-]+)", line).group(1) for line in table.splitlines()
                  if re.match(r"\| `[\w.-]+", line)}
    assert documented == set(_tasks(INVOKE))

"""Real builds on a real Docker engine with the tiny test catalogue (tests/data/hello)."""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from pathlib import Path

import pytest

from cryostack.engine.base import connect
from helpers import cryostack, edit_yaml, make_hello_project

pytestmark = pytest.mark.docker


def report(root: Path) -> dict:
    return json.loads((root / "build" / "record.json").read_text())["images"]


@pytest.fixture(scope="module")
def first_build(hello_project: Path):
    """One build of every test family, two at a time, with --keep-going."""
    result = cryostack("--root", str(hello_project), "build", "--jobs", "2", "--keep-going")
    return result, report(hello_project)


def test_keep_going_builds_every_other_image_and_exits_1(first_build, hello_project):
    result, outcomes = first_build
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    status = {key.split("/")[0]: o["status"] for key, o in outcomes.items()}
    assert status == {"hello": "built", "other": "built", "broken": "failed", "badsmoke": "failed", "nolib": "failed"}
    assert "3 of 5 images failed" in result.stderr
    for key, outcome in outcomes.items():
        assert Path(outcome["log"]).is_file(), key


def test_failures_say_why(first_build):
    _, outcomes = first_build
    assert "deliberately broken" in Path(outcomes["broken/1.0/gcc-cpu"]["log"]).read_text()
    assert "build failed: step `bash /opt/cryostack/build.sh` exited with code 2" in outcomes["broken/1.0/gcc-cpu"]["reason"]
    assert "does not match 'hello 1.0-nope'" in outcomes["badsmoke/1.0/gcc-cpu"]["reason"]
    assert "missing shared libraries" in outcomes["nolib/1.0/gcc-cpu"]["reason"]
    assert "libgomp.so.1 => not found" in outcomes["nolib/1.0/gcc-cpu"]["reason"]


def test_summary_table_lists_status_duration_and_size(first_build):
    result, _ = first_build
    row = next(line for line in result.stdout.splitlines() if line.startswith(" hello/1.0/gcc-cpu") or line.startswith("hello/1.0/gcc-cpu"))
    assert "built" in row and " MB" in row and row.split()[2].endswith("s")


def test_built_image_is_tagged_and_labelled(first_build, engine):
    _, outcomes = first_build
    hello = outcomes["hello/1.0/gcc-cpu"]
    readable = engine.image("cryostack/hello:1.0-gcc-cpu")
    by_fingerprint = engine.image(hello["image"])
    assert readable is not None and by_fingerprint is not None and readable.id == by_fingerprint.id
    assert hello["image"] == f"cryostack/hello:1.0-gcc-cpu-{hello['fingerprint'][:12]}"
    labels = readable.labels
    assert labels["io.cryostack.fingerprint"] == hello["fingerprint"]
    assert labels["io.cryostack.family"] == "hello" and labels["io.cryostack.variant"] == "gcc-cpu"
    assert labels["io.cryostack.toolchain"] == "gcc" and labels["io.cryostack.targets"] == "c6i"
    assert len(labels["io.cryostack.source-sha256"]) == 64
    assert labels["io.cryostack.cryostack-version"]
    assert labels["org.opencontainers.image.revision"]
    assert labels["io.cryostack.base-images"].startswith("local/debian:bookworm@sha256:")
    code, output = engine.run("cryostack/hello:1.0-gcc-cpu", "hello --version")
    assert (code, output.strip()) == (0, "hello 1.0")


def test_failed_images_are_not_tagged(first_build, engine):
    _, outcomes = first_build
    for name in ("badsmoke", "nolib"):
        assert engine.image(outcomes[f"{name}/1.0/gcc-cpu"]["image"]) is None
        assert engine.image(f"cryostack/{name}:1.0-gcc-cpu") is None


def test_second_run_builds_nothing(first_build, hello_project, engine):
    before = engine.image("cryostack/hello:1.0-gcc-cpu").id
    result = cryostack("--root", str(hello_project), "build", "--only", "hello,other")
    assert result.returncode == 0, result.stderr
    assert "building" not in result.stdout
    assert {report(hello_project)[k]["status"] for k in ("hello/1.0/gcc-cpu", "other/1.0/gcc-cpu")} == {"up-to-date"}
    assert engine.image("cryostack/hello:1.0-gcc-cpu").id == before


def test_dry_run_says_what_would_build_and_why(first_build, hello_project):
    catalogue = hello_project / "images" / "hello.yaml"
    original = edit_yaml(catalogue, lambda d: d["variants"]["gcc-cpu"].update(cpu_flags="-O1"))
    try:
        result = cryostack("--root", str(hello_project), "build", "--dry-run")
    finally:
        catalogue.write_text(original)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if "/1.0/" in line}
    assert "would build" in lines["hello/1.0/gcc-cpu"] and "inputs changed" in lines["hello/1.0/gcc-cpu"]
    assert "up-to-date" in lines["other/1.0/gcc-cpu"]
    assert "would build" in lines["badsmoke/1.0/gcc-cpu"] and "not built yet" in lines["badsmoke/1.0/gcc-cpu"]


def test_editing_the_shared_recipe_rebuilds_every_image_using_it(first_build, hello_project):
    recipe = hello_project / "recipes" / "hello" / "recipe.j2"
    original = recipe.read_text()
    try:
        recipe.write_text(original.replace("{% endmacro %}", "true\n{% endmacro %}"))
        result = cryostack("--root", str(hello_project), "build", "--dry-run", "--only", "hello,other")
    finally:
        recipe.write_text(original)
    assert [line.split()[1:3] for line in result.stdout.splitlines() if "/1.0/" in line] == [["would", "build"]] * 2


def test_without_keep_going_the_rest_is_skipped(tmp_path, base_image):
    root = make_hello_project(tmp_path, {"aaa": ("-DBROKEN", "hello {version}"), "zzz": ("-O2", "hello {version}")})
    result = cryostack("--root", str(root), "build")
    assert result.returncode == 1
    outcomes = report(root)
    assert outcomes["aaa/1.0/gcc-cpu"]["status"] == "failed"
    assert outcomes["zzz/1.0/gcc-cpu"]["status"] == "skipped"
    assert "--keep-going" in outcomes["zzz/1.0/gcc-cpu"]["reason"]


def test_tampered_source_in_the_mirror_is_refused(tmp_path, engine, base_image):
    root = make_hello_project(tmp_path, {"tampered": ("-O2", "hello {version}")})
    tarball = root / ".cache" / "sources" / "hello-1.0.tar.gz"
    tarball.write_bytes(tarball.read_bytes() + b"\0")
    result = cryostack("--root", str(root), "build")
    assert result.returncode == 1
    reason = report(root)["tampered/1.0/gcc-cpu"]["reason"]
    assert "sha256 mismatch" in reason and "the catalogue pins" in reason and "tampered.yaml" in reason
    assert engine.image("cryostack/tampered:1.0-gcc-cpu") is None


def test_fetched_source_with_wrong_checksum_never_reaches_the_mirror(tmp_path, base_image):
    root = make_hello_project(tmp_path, {"fetched": ("-O2", "hello {version}")})
    served = tmp_path / "served"
    served.mkdir()
    tarball = root / ".cache" / "sources" / "hello-1.0.tar.gz"
    (served / "hello-1.0.tar.gz").write_bytes(tarball.read_bytes() + b"changed upstream")
    tarball.unlink()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        catalogue = root / "images" / "fetched.yaml"
        url = f"http://127.0.0.1:{server.server_address[1]}/hello-1.0.tar.gz"
        edit_yaml(catalogue, lambda d: d["versions"]["1.0"]["source"].update(url=url))
        result = cryostack("--root", str(root), "build")
    finally:
        server.shutdown()
    assert result.returncode == 1
    assert "sha256 mismatch for hello-1.0.tar.gz as fetched" in report(root)["fetched/1.0/gcc-cpu"]["reason"]
    assert list((root / ".cache" / "sources").iterdir()) == []


def test_build_all_reports_what_cannot_build_here_without_failing(tmp_path, base_image):
    root = make_hello_project(tmp_path, {"hello": ("-O2", "hello {version}")})
    def unpin(data):
        source = data["versions"]["1.0"]["source"]
        del source["sha256"]
        source["unpinned"] = "nobody has checked this tarball yet"

    edit_yaml(root / "images" / "hello.yaml", unpin)
    everything = cryostack("--root", str(root), "build-all")
    assert everything.returncode == 0, everything.stderr
    assert "unavailable" in everything.stdout and "nobody has checked" in everything.stdout
    selected = cryostack("--root", str(root), "build", "--only", "hello")
    assert selected.returncode == 1 and "could not be built" in selected.stderr


def test_bench_measures_the_matrix_cost_side_by_side(tmp_path, base_image):
    """`bench --matrix F` builds F's first variant cold, its second after it and the first after an edit,
    each in caches of its own, and prints each as a ratio to the cold build."""
    root = make_hello_project(tmp_path, {"hello": ("-O2", "hello {version}")})
    edit_yaml(root / "images" / "hello.yaml",
              lambda data: data["variants"].update({"gcc-cpu-o3": dict(data["variants"]["gcc-cpu"], cpu_flags="-O3")}))
    result = cryostack("--root", str(root), "bench", "--matrix", "hello")
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert re.search(r"^second variant: hello/1\.0/gcc-cpu-o3 after hello/1\.0/gcc-cpu: \d+ s vs \d+ s cold; "
                     r"\d+\.\d\dx the cold build", text, re.MULTILINE), text
    assert re.search(r"^one-line recipe edit of hello/1\.0/gcc-cpu: \d+ s vs \d+ s cold; \d+\.\d\dx the cold build",
                     text, re.MULTILINE), text
    assert not [tag for tag in connect().images("cryostack-bench/hello")], "bench leaves no image behind"


def test_an_entry_whose_base_image_cannot_be_had_says_what_it_needs_in_one_line(engine):
    """crYOLO needs a Python older than any reachable source offers: its one line says so."""
    if engine.image("python:3.8-slim-bookworm") is not None:
        pytest.skip("this engine has the Python 3.8 image: crYOLO can be built here")
    result = cryostack("build", "--dry-run", "--only", "cryolo")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.startswith("cryolo/")}
    assert lines, result.stdout
    for key in lines:
        assert re.search(r"unavailable +needs Python < 3\.9 \(TensorFlow 1\.15\), which no reachable source offers: "
                         r"base image python:3\.8-slim-bookworm is not available here \(pull failed: [^;()]+; "
                         r"CRYOSTACK_PYTHON_IMAGE names another image\)$", lines[key]), lines[key]

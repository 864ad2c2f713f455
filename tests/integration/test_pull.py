"""A second site fills its own EFS tree from a published manifest: by path, over HTTP, or from a registry."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from helpers import cryostack, fake_sif, make_hello_project, record_built


@pytest.fixture
def site_a(tmp_path: Path) -> Path:
    """Site A: two images published to its EFS tree."""
    root = make_hello_project(tmp_path / "a", {"hello": ("-O2", "hello {version}"), "other": ("-O3", "hello {version}")})
    (root / "build").mkdir()
    record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "hello.sif", 150_000, seed=3))
    record_built(root, "other/1.0/gcc-cpu", fake_sif(root / "build" / "other.sif", 90_000, seed=4))
    efs = tmp_path / "efs-a"
    result = cryostack("--root", str(root), "publish", "--efs-root", str(efs))
    assert result.returncode == 0, result.stderr
    return efs


def pull(efs: Path, manifest: str, *extra: str, cwd: Path | None = None):
    return cryostack("pull", "--efs-root", str(efs), "--manifest", manifest, *extra, cwd=cwd or efs.parent)


def same_tree(a: Path, b: Path) -> None:
    left = {p.relative_to(a): p.read_bytes() for p in (a / "images").rglob("*.sif") if not p.is_symlink()}
    right = {p.relative_to(b): p.read_bytes() for p in (b / "images").rglob("*.sif") if not p.is_symlink()}
    assert left == right and len(left) == 2
    for link in (a / "images").rglob("current.sif"):
        assert os.readlink(b / link.relative_to(a)) == os.readlink(link)


def test_pull_from_a_manifest_path_gives_the_same_tree(site_a, tmp_path):
    site_b = tmp_path / "efs-b"
    result = pull(site_b, str(site_a / "manifest.json"))
    assert result.returncode == 0, result.stderr
    same_tree(site_a, site_b)
    a, b = (json.loads((s / "manifest.json").read_text()) for s in (site_a, site_b))
    assert {k: v["sif"] for k, v in a["images"].items()} == {k: v["sif"] for k, v in b["images"].items()}
    again = pull(site_b, str(site_a / "manifest.json"))
    assert again.returncode == 0 and again.stdout.count("already here, 0 MB copied") == 2


def test_pull_over_http(site_a, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site_a))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        site_b = tmp_path / "efs-b"
        result = pull(site_b, f"http://127.0.0.1:{server.server_address[1]}/manifest.json", "--only", "hello")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert set(json.loads((site_b / "manifest.json").read_text())["images"]) == {"hello/1.0/gcc-cpu"}


def test_a_corrupt_sif_is_refused_and_nothing_half_written(site_a, tmp_path):
    corrupt = next((site_a / "images" / "hello").rglob("*.sif"))
    corrupt = corrupt.resolve()
    os.chmod(corrupt, 0o644)
    corrupt.write_bytes(corrupt.read_bytes()[:-10] + b"0123456789")
    site_b = tmp_path / "efs-b"
    result = pull(site_b, str(site_a / "manifest.json"))
    assert result.returncode == 1
    assert "hello/1.0/gcc-cpu" in result.stderr and "does not match" in result.stderr
    assert not (site_b / corrupt.relative_to(site_a)).exists()
    assert list(site_b.rglob(".*partial*")) == [] and list(site_b.glob(".pull-*")) == []
    assert set(json.loads((site_b / "manifest.json").read_text())["images"]) == {"other/1.0/gcc-cpu"}


def test_unknown_selection_or_bad_manifest_is_an_input_error(site_a, tmp_path):
    missing = pull(tmp_path / "efs-b", str(site_a / "manifest.json"), "--only", "relion")
    assert missing.returncode == 2 and "--only 'relion': not in" in missing.stderr and "hello/1.0/gcc-cpu" in missing.stderr
    (tmp_path / "bad.json").write_text('{"schema_version": 99, "images": {}}')
    bad = pull(tmp_path / "efs-b", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "schema_version 99 is not supported" in bad.stderr
    nothing = pull(tmp_path / "efs-b", str(tmp_path / "absent.json"))
    assert nothing.returncode == 2 and "cannot read it" in nothing.stderr


@pytest.mark.docker
def test_pull_from_a_registry_by_digest_makes_the_sif_here(tmp_path, base_image, trixie_base, registry):
    root = make_hello_project(tmp_path / "a", {"hello": ("-O2", "hello {version}")})
    env = dict(os.environ, CRYOSTACK_REGISTRY_PASSWORD=registry.password)
    for step in (["build"], ["sif"], ["push", "--registry", registry.url, "--username", registry.username],
                 ["publish", "--efs-root", str(tmp_path / "efs-a")]):
        result = cryostack("--root", str(root), *step, env=env)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
    published = json.loads((tmp_path / "efs-a" / "manifest.json").read_text())["images"]["hello/1.0/gcc-cpu"]
    assert published["oci"]["digest"].startswith("sha256:")

    site_b = tmp_path / "efs-b"
    result = cryostack("--root", str(root), "pull", "--efs-root", str(site_b), "--manifest",
                       str(tmp_path / "efs-a" / "manifest.json"), "--registry", registry.url,
                       "--username", registry.username, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = json.loads((site_b / "manifest.json").read_text())["images"]["hello/1.0/gcc-cpu"]
    sif = site_b / entry["sif"]["path"]
    assert sif.read_bytes()[32:41] == b"SIF_MAGIC" and entry["oci"]["digest"] == published["oci"]["digest"]
    assert registry.password not in result.stdout + result.stderr

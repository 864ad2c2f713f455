"""Publishing SIF files to an EFS-like tree: layout, atomicity under SIGKILL, locking, pruning."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import SIF_HEADER, cryostack, edit_yaml, fake_sif, make_hello_project, record_built

@pytest.fixture
def site(tmp_path: Path):
    root = make_hello_project(tmp_path / "project", {"hello": ("-O2", "hello {version}"), "other": ("-O3", "hello {version}")})
    (root / "build").mkdir()
    return root, tmp_path / "efs"


def publish(root: Path, efs: Path, *extra: str):
    return cryostack("--root", str(root), "publish", "--efs-root", str(efs), *extra)


def manifest(efs: Path) -> dict:
    return json.loads((efs / "manifest.json").read_text())


def test_publish_layout_modes_link_and_manifest(site):
    root, efs = site
    fp = record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "hello.sif", 300_000))
    result = publish(root, efs, "--only", "hello")
    assert result.returncode == 0, result.stderr
    sif = efs / "images" / "hello" / "1.0" / "gcc-cpu" / f"{fp[:12]}.sif"
    assert sif.read_bytes() == (root / "build" / "hello.sif").read_bytes()
    assert stat.S_IMODE(sif.stat().st_mode) == 0o444
    assert stat.S_IMODE(sif.parent.stat().st_mode) == 0o755
    current = sif.parent / "current.sif"
    assert current.is_symlink() and os.readlink(current) == sif.name
    data = manifest(efs)
    assert data["schema_version"] == 1
    entry = data["images"]["hello/1.0/gcc-cpu"]
    assert entry["fingerprint"] == fp and entry["sif"]["path"] == str(sif.relative_to(efs))
    assert entry["sif"]["size"] == 300_000 and entry["targets"] == ["c6i"]
    assert entry["commands"] == [{"name": "hello", "mpi": False}] and entry["prefix"] == "/opt/hello"
    assert [p.name for p in sif.parent.iterdir() if p.name.startswith(".")] == []


def test_publishing_an_unchanged_image_copies_zero_bytes(site):
    root, efs = site
    record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "hello.sif", 200_000))
    assert publish(root, efs, "--only", "hello").returncode == 0
    published = next((efs / "images").rglob("*.sif"))
    before = published.stat()
    again = publish(root, efs, "--only", "hello")
    assert again.returncode == 0
    assert "unchanged, 0 bytes copied" in again.stdout and "(0 MB copied)" in again.stdout
    after = published.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_new_fingerprint_switches_current_and_prune_keeps_it(site):
    root, efs = site
    old = record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "old.sif", 100_000, seed=1))
    assert publish(root, efs, "--only", "hello").returncode == 0
    edit_yaml(root / "images" / "hello.yaml", lambda d: d["variants"]["gcc-cpu"].update(cpu_flags="-O1"))
    new = record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "new.sif", 120_000, seed=2))
    assert new != old
    assert publish(root, efs, "--only", "hello").returncode == 0
    folder = efs / "images" / "hello" / "1.0" / "gcc-cpu"
    assert os.readlink(folder / "current.sif") == f"{new[:12]}.sif"
    entry = manifest(efs)["images"]["hello/1.0/gcc-cpu"]
    assert entry["fingerprint"] == new and [h["fingerprint"] for h in entry["history"]] == [old]
    assert (folder / f"{old[:12]}.sif").exists()

    pruned = cryostack("prune", "--efs-root", str(efs), "--keep", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert sorted(p.name for p in folder.glob("*.sif")) == sorted([f"{new[:12]}.sif", "current.sif"])
    assert manifest(efs)["images"]["hello/1.0/gcc-cpu"]["history"] == []
    assert (folder / "current.sif").resolve().exists()


def test_sigkill_mid_copy_leaves_no_partial_file_and_a_valid_manifest(site):
    root, efs = site
    record_built(root, "other/1.0/gcc-cpu", fake_sif(root / "build" / "other.sif", 50_000))
    assert publish(root, efs, "--only", "other").returncode == 0
    before = (efs / "manifest.json").read_bytes()

    fifo = root / "build" / "hello.sif"
    os.mkfifo(fifo)
    fp = record_built(root, "hello/1.0/gcc-cpu", fifo, sha256="0" * 64)
    publisher = subprocess.Popen([sys.executable, "-m", "cryostack", "--root", str(root), "publish",
                                  "--efs-root", str(efs), "--only", "hello"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as writer:  # blocks until the publisher opens the SIF
        writer.write(SIF_HEADER + b"x" * 3_000_000)
        writer.flush()
        folder = efs / "images" / "hello" / "1.0" / "gcc-cpu"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            partials = list(folder.glob(".*partial*")) if folder.exists() else []
            if partials and partials[0].stat().st_size >= 2 << 20:  # two 1 MiB blocks copied, a third awaited
                break
            time.sleep(0.02)
        else:
            pytest.fail("the publisher never started copying")
        publisher.send_signal(signal.SIGKILL)
        publisher.wait()
    assert not (folder / f"{fp[:12]}.sif").exists()
    assert not (folder / "current.sif").exists()
    assert (efs / "manifest.json").read_bytes() == before
    json.loads(before)

    # The next publisher cleans up what the dead one left and publishes normally.
    fifo.unlink()
    record_built(root, "hello/1.0/gcc-cpu", fake_sif(fifo, 80_000))
    assert publish(root, efs).returncode == 0
    assert list(efs.rglob(".*partial*")) == []
    assert set(manifest(efs)["images"]) == {"hello/1.0/gcc-cpu", "other/1.0/gcc-cpu"}


def test_concurrent_publishers_are_serialised_and_the_second_sees_the_first(site):
    root, efs = site
    fifo = root / "build" / "hello.sif"
    os.mkfifo(fifo)
    data = SIF_HEADER + b"y" * 500_000
    import hashlib
    record_built(root, "hello/1.0/gcc-cpu", fifo, sha256=hashlib.sha256(data).hexdigest())
    record_built(root, "other/1.0/gcc-cpu", fake_sif(root / "build" / "other.sif", 60_000))
    first = subprocess.Popen([sys.executable, "-m", "cryostack", "--root", str(root), "publish",
                              "--efs-root", str(efs), "--only", "hello"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = open(fifo, "wb")  # the first publisher now holds the lock, blocked on its SIF
    second_result = {}
    second = threading.Thread(target=lambda: second_result.update(r=publish(root, efs, "--only", "other")))
    second.start()
    time.sleep(2)
    assert second.is_alive(), "the second publisher must wait for the lock"
    writer.write(data)
    writer.close()
    assert first.wait(timeout=60) == 0, first.stderr.read()
    second.join(timeout=60)
    assert second_result["r"].returncode == 0, second_result["r"].stderr
    assert "waiting for another publisher's lock" in second_result["r"].stdout
    assert set(manifest(efs)["images"]) == {"hello/1.0/gcc-cpu", "other/1.0/gcc-cpu"}


def test_corrupt_sif_is_not_published(site):
    root, efs = site
    sif = fake_sif(root / "build" / "hello.sif", 100_000)
    record_built(root, "hello/1.0/gcc-cpu", sif)
    sif.write_bytes(sif.read_bytes()[:-1] + b"!")  # changed after `invoke sif` recorded its sha256
    result = publish(root, efs, "--only", "hello")
    assert result.returncode == 1
    assert "does not match the build's" in result.stderr and "Traceback" not in result.stderr
    assert list((efs / "images").rglob("*.sif")) == []
    assert manifest(efs)["images"] == {}


def test_selecting_an_unbuilt_image_publishes_nothing(site):
    root, efs = site
    record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "hello.sif", 10_000))
    result = publish(root, efs, "--only", "hello,other")
    assert result.returncode == 2
    assert "other/1.0/gcc-cpu (not built: `cryostack build`)" in result.stderr and "nothing was published" in result.stderr
    assert not efs.exists()


def test_group_and_modes_are_configurable(site):
    root, efs = site
    record_built(root, "hello/1.0/gcc-cpu", fake_sif(root / "build" / "hello.sif", 10_000))
    result = publish(root, efs, "--group", "daemon", "--file-mode", "0440", "--dir-mode", "0750")
    assert result.returncode == 0, result.stderr
    sif = next((efs / "images").rglob("*.sif"))
    import grp
    assert grp.getgrgid(sif.stat().st_gid).gr_name == "daemon"
    assert stat.S_IMODE(sif.stat().st_mode) == 0o440 and stat.S_IMODE(sif.parent.stat().st_mode) == 0o750
    bad = publish(root, efs, "--group", "no-such-group-here")
    assert bad.returncode == 2 and "no such group" in bad.stderr

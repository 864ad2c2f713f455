"""The shared EFS tree: SIF files, `current.sif` links and manifest.json, written atomically.

Every file appears under its final name only complete and checked (temporary name, fsync,
rename); `current.sif` and the manifest are switched by rename; publishers are serialised by a
POSIX lock (fcntl, which NFS/EFS clients honour) held for the whole publish.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import hashlib
import json
import os
import time
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Tuple

from ..errors import BuildError, InputError, run_hint
from ..sources import sha256_of
from . import manifest as manifests

LOCK_NAME = ".cryostack.lock"
PARTIAL = ".partial-"


class EfsTree:
    """One EFS root: ROOT/images/<family>/<version>/<variant>/<fingerprint>.sif and ROOT/manifest.json."""

    def __init__(self, root: Path, file_mode: int = 0o444, dir_mode: int = 0o755, group: Optional[str] = None):
        self.root = Path(root)
        self.file_mode, self.dir_mode = file_mode, dir_mode
        try:
            self.gid = grp.getgrnam(group).gr_gid if group else -1
        except KeyError:
            raise InputError(f"--group {group!r}: no such group on this machine") from None

    @property
    def manifest_path(self) -> Path:
        return self.root / manifests.MANIFEST_NAME

    @contextlib.contextmanager
    def locked(self, timeout: float = 600.0, on_wait=lambda: None) -> Iterator[None]:
        """Hold the tree's lock; partial files left by a publisher that died are removed first."""
        self._mkdir(self.root)
        with open(self.root / LOCK_NAME, "a+") as handle:
            deadline, waited = time.monotonic() + timeout, False
            while True:
                try:
                    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                    if time.monotonic() > deadline:
                        raise BuildError(f"{self.root}: another publisher has held the lock for {timeout:.0f}s") from None
                    if not waited:
                        on_wait()
                        waited = True
                    time.sleep(0.2)
            try:
                self._remove_partials()
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)

    def read_manifest(self) -> dict:
        if not self.manifest_path.exists():
            return manifests.empty()
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BuildError(f"{self.manifest_path}: unreadable ({exc}); refusing to overwrite it") from None
        return manifests.check(data, str(self.manifest_path))

    def write_manifest(self, manifest: dict) -> None:
        with self._atomic(self.manifest_path) as out:
            out.write((json.dumps(manifest, indent=2) + "\n").encode())

    def install_sif(self, source: Path, relpath: str, expect_sha256: Optional[str]) -> Tuple[dict, int]:
        """Copy a SIF into place unless an identical one is there; ({path, sha256, size}, bytes copied)."""
        dest = self.root / relpath
        if dest.exists() and expect_sha256 and sha256_of(dest) == expect_sha256:
            return {"path": relpath, "sha256": expect_sha256, "size": dest.stat().st_size}, 0
        digest, size = hashlib.sha256(), 0
        with open(source, "rb") as src, self._atomic(dest) as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
            if expect_sha256 and digest.hexdigest() != expect_sha256:
                raise BuildError(f"{source}: sha256 {digest.hexdigest()} does not match the build's {expect_sha256}; "
                                 f"not published (run {run_hint('sif')} again)")
        return {"path": relpath, "sha256": digest.hexdigest(), "size": size}, size

    def switch_to(self, manifest: dict, entries: Dict[str, dict]) -> None:
        """Point each entry's current.sif at its SIF, then write MANIFEST with the entries merged in."""
        for entry in entries.values():
            self.point_current(entry["sif"]["path"])
        self.write_manifest(manifests.merge(manifest, entries))

    def point_current(self, relpath: str) -> None:
        """Switch <variant>/current.sif to the given SIF by renaming a new link over it."""
        dest = self.root / relpath
        link = dest.parent / "current.sif"
        tmp = dest.parent / f".current.sif{PARTIAL}{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(dest.name, tmp)
        os.replace(tmp, link)
        _fsync_dir(dest.parent)

    def remove(self, relpath: str) -> int:
        path = self.root / relpath
        size = path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        return size

    @contextlib.contextmanager
    def _atomic(self, path: Path) -> Iterator[BinaryIO]:
        """A hidden temporary beside PATH to write; when the block ends without error it is fsynced,
        given the tree's group and mode, and renamed over PATH. On any error it is removed."""
        self._mkdir(path.parent)
        tmp = path.with_name(f".{path.name}{PARTIAL}{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            self._finish(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _finish(self, path: Path) -> None:
        if self.gid != -1:
            os.chown(path, -1, self.gid)
        os.chmod(path, self.file_mode)

    def _mkdir(self, path: Path) -> None:
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            if self.gid != -1:
                os.chown(directory, -1, self.gid)
            os.chmod(directory, self.dir_mode)

    def _remove_partials(self) -> None:
        for partial in self.root.rglob(f".*{PARTIAL}*"):
            partial.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The shared EFS tree: SIF files, `current.sif` links and manifest.json, written atomically.

Every file appears under its final name only complete and checked (temporary name, fsync,
rename); `current.sif` and the manifest are switched by rename; publishers are serialised by a
POSIX lock (fcntl, which NFS/EFS clients honour).

Paths below the root come from manifests, which may be another site's: every access walks
from the root one component at a time with O_NOFOLLOW, so a symbolic link planted anywhere in
the tree (a folder, the lock file, the manifest, a SIF) is refused rather than followed, and
the directory reached is checked to resolve inside the root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, Optional, Tuple

from ..errors import BuildError, InputError, run_hint
from ..values import confined
from . import manifest as manifests

LOCK_NAME = ".cryostack.lock"
PARTIAL = ".partial-"
STAGING = ".pull-"
STAGING_LOCK = ".owner"
STALE_STAGING = 3600  # seconds after which a staging directory without its lock file is abandoned
BLOCK = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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

    # --- locking --------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, timeout: float = 600.0, on_wait=lambda: None) -> Iterator[None]:
        """Hold the tree's lock; partial files left by a publisher that died are removed first."""
        with self._directory("", create=True) as root:
            handle = _open_regular(root, LOCK_NAME, os.O_RDWR | os.O_CREAT, self.root / LOCK_NAME)
        try:
            deadline, waited = time.monotonic() + timeout, False
            while True:
                try:
                    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise BuildError(f"{self.root / LOCK_NAME}: cannot lock it: {exc.strerror}") from None
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
        finally:
            os.close(handle)

    # --- the manifest ---------------------------------------------------------------------

    def read_manifest(self) -> dict:
        """The tree's manifest, checked (an empty one if there is none yet)."""
        try:
            with self._directory("", create=False) as root:
                handle = _open_regular(root, manifests.MANIFEST_NAME, 0, self.manifest_path)
        except FileNotFoundError:
            return manifests.empty()
        with os.fdopen(handle, "rb") as source:
            data = source.read(manifests.MAX_MANIFEST_BYTES + 1)
        return manifests.load(data, str(self.manifest_path))

    def write_manifest(self, manifest: dict) -> None:
        with self._atomic(manifests.MANIFEST_NAME) as out:
            out.write((json.dumps(manifest, indent=2) + "\n").encode())

    # --- SIF files ------------------------------------------------------------------------

    def install_sif(self, source: Path, relpath: str, expect_sha256: Optional[str]) -> Tuple[dict, int]:
        """Copy a SIF into place unless an identical one is there; ({path, sha256, size}, bytes copied)."""
        if expect_sha256 and self.holds(relpath, expect_sha256):
            return {"path": relpath, "sha256": expect_sha256, "size": self.size_of(relpath)}, 0
        digest, size = hashlib.sha256(), 0
        with open(source, "rb") as src, self._atomic(relpath) as out:
            for block in iter(lambda: src.read(BLOCK), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
            if expect_sha256 and digest.hexdigest() != expect_sha256:
                raise BuildError(f"{source}: sha256 {digest.hexdigest()} does not match the build's {expect_sha256}; "
                                 f"not published (run {run_hint('sif')} again)")
        return {"path": relpath, "sha256": digest.hexdigest(), "size": size}, size

    def install_staged(self, staged: Path, relpath: str) -> None:
        """Move a verified file from this tree's staging directory to RELPATH (a rename: the
        staging directory is inside the root, so on the same file system)."""
        parent, name = _split(relpath)
        with self._directory(parent, create=True) as folder:
            handle = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self._finish(handle)
                os.fsync(handle)
            finally:
                os.close(handle)
            _replace(folder, name, self.root / relpath, source=staged)
            os.fsync(folder)

    def holds(self, relpath: str, sha256: str) -> bool:
        """Is RELPATH a regular file in the tree (no link followed) with this sha256?"""
        parent, name = _split(relpath)
        try:
            with self._directory(parent, create=False) as folder:
                handle = _open_regular(folder, name, 0, self.root / relpath)
        except (FileNotFoundError, BuildError):
            return False
        digest = hashlib.sha256()
        with os.fdopen(handle, "rb") as source:
            for block in iter(lambda: source.read(BLOCK), b""):
                digest.update(block)
        return digest.hexdigest() == sha256

    def size_of(self, relpath: str) -> int:
        """The size of the regular file at RELPATH; -1 if there is none (or a link is there)."""
        parent, name = _split(relpath)
        try:
            with self._directory(parent, create=False) as folder:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except (FileNotFoundError, BuildError):
            return -1
        return info.st_size if stat.S_ISREG(info.st_mode) else -1

    def switch_to(self, manifest: dict, entries: Dict[str, dict]) -> None:
        """Point each entry's current.sif at its SIF, then write MANIFEST with the entries merged in."""
        for entry in entries.values():
            self.point_current(entry["sif"]["path"])
        self.write_manifest(manifests.merge(manifest, entries))

    def point_current(self, relpath: str) -> None:
        """Switch <variant>/current.sif to the given SIF by renaming a new link over it."""
        parent, name = _split(relpath)
        with self._directory(parent, create=True) as folder:
            tmp = f".current.sif{PARTIAL}{os.getpid()}-{secrets.token_hex(4)}"
            os.symlink(name, tmp, dir_fd=folder)
            _replace(folder, "current.sif", self.root / parent / "current.sif", tmp=tmp)
            os.fsync(folder)

    def remove(self, relpath: str) -> int:
        """Delete the regular file at RELPATH (never a link, never outside the tree); bytes freed."""
        parent, name = _split(relpath)
        try:
            with self._directory(parent, create=False) as folder:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    raise BuildError(f"{self.root / relpath}: not a regular file; left alone")
                os.unlink(name, dir_fd=folder)
        except FileNotFoundError:
            return 0
        return info.st_size

    # --- staging for pull -----------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private directory in the tree (.pull-*) for downloads, removed afterwards; one left
        by a pull that died (its owner lock is free) is removed by the next pull."""
        self.clean_staging()
        if not self.root.is_dir():
            self._make_root()
        path = Path(tempfile.mkdtemp(prefix=STAGING, dir=self.root))
        owner = os.open(path / STAGING_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(owner, fcntl.LOCK_EX)
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(owner)

    def clean_staging(self) -> None:
        """Remove staging directories whose pull is gone (the lock in them can be taken)."""
        try:
            entries = [e for e in os.scandir(self.root) if e.name.startswith(STAGING)]
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)  # not one of ours: a link is removed, never followed
            elif _abandoned(Path(entry.path)):
                shutil.rmtree(entry.path, ignore_errors=True)  # rmtree never follows links (fd-based)

    # --- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _directory(self, relpath: str, create: bool) -> Iterator[int]:
        """A descriptor of ROOT/RELPATH, reached without following any link below the root
        (missing folders made when CREATE). FileNotFoundError if absent and not CREATE."""
        if create and not self.root.is_dir():
            self._make_root()
        handle = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        walked = ""
        try:
            for part in relpath.split("/") if relpath else []:
                confined(self.root, part)
                walked = f"{walked}/{part}" if walked else part
                try:
                    inner = os.open(part, _DIR_FLAGS, dir_fd=handle)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, self.dir_mode, dir_fd=handle)
                    except FileExistsError:
                        pass
                    inner = os.open(part, _DIR_FLAGS, dir_fd=handle)
                    self._finish(inner, self.dir_mode)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise BuildError(f"{self.root / walked}: a symbolic link or not a folder; refusing to follow it "
                                         "(remove it from the tree)") from None
                    raise
                os.close(handle)
                handle = inner
            _check_inside(handle, self.root, self.root / relpath)
            yield handle
        finally:
            os.close(handle)

    def _make_root(self) -> None:
        missing, path = [], self.root
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            if self.gid != -1:
                os.chown(directory, -1, self.gid)
            os.chmod(directory, self.dir_mode)

    @contextlib.contextmanager
    def _atomic(self, relpath: str) -> Iterator[BinaryIO]:
        """A hidden temporary beside RELPATH to write; when the block ends without error it is fsynced,
        given the tree's group and mode, and renamed over RELPATH. On any error it is removed."""
        parent, name = _split(relpath)
        with self._directory(parent, create=True) as folder:
            tmp = f".{name}{PARTIAL}{os.getpid()}-{secrets.token_hex(4)}"
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
            try:
                with os.fdopen(handle, "wb") as out:
                    yield out
                    out.flush()
                    os.fsync(out.fileno())
                    self._finish(out.fileno())
                _replace(folder, name, self.root / relpath, tmp=tmp)
                os.fsync(folder)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=folder)
                raise

    def _finish(self, handle: int, mode: Optional[int] = None) -> None:
        if self.gid != -1:
            os.fchown(handle, -1, self.gid)
        os.fchmod(handle, self.file_mode if mode is None else mode)

    def _remove_partials(self) -> None:
        # Path.rglob does not descend into linked folders; unlinking a matching link removes the link.
        for partial in self.root.rglob(f".*{PARTIAL}*"):
            partial.unlink(missing_ok=True)


def open_below(root: Path, relpath: str) -> int:
    """A read descriptor of the regular file ROOT/RELPATH, reached without following links below
    ROOT (another site's tree read from a path). BuildError if a link or non-file is in the way."""
    parent, name = _split(relpath)
    handle = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parent.split("/") if parent else []:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=handle)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise BuildError(f"{root / relpath}: a symbolic link or not a folder on the way; refusing it") from None
                raise
            os.close(handle)
            handle = inner
        _check_inside(handle, root, root / parent)
        return _open_regular(handle, name, 0, root / relpath)
    finally:
        os.close(handle)


def _split(relpath: str) -> Tuple[str, str]:
    confined("/", relpath)  # no '..', no absolute path, no empty component
    parent, _, name = relpath.rpartition("/")
    return parent, name


def _open_regular(folder: int, name: str, flags: int, shown: Path) -> int:
    """NAME in FOLDER opened without following a link and without blocking on a FIFO; it must be a
    regular file. FileNotFoundError when absent (and not created)."""
    try:
        handle = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BuildError(f"{shown}: a symbolic link; refusing to follow it (remove it from the tree)") from None
        if exc.errno == errno.ENOENT:
            raise
        raise BuildError(f"{shown}: cannot open it: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise BuildError(f"{shown}: not a regular file; refusing it")
    os.set_blocking(handle, True)
    return handle


def _replace(folder: int, name: str, shown: Path, tmp: Optional[str] = None, source: Optional[Path] = None) -> None:
    """Rename TMP (in FOLDER) or SOURCE (a path) over NAME: a link at NAME is replaced, not followed."""
    try:
        if tmp is not None:
            os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        else:
            os.replace(source, name, dst_dir_fd=folder)
    except OSError as exc:
        raise BuildError(f"{shown}: cannot put it in place: {exc.strerror}") from None


def _check_inside(handle: int, root: Path, shown: Path) -> None:
    """The folder behind HANDLE, resolved by the kernel, lies inside ROOT (resolved)."""
    where = Path(os.readlink(f"/proc/self/fd/{handle}"))
    base = root.resolve()
    if where != base and base not in where.parents:
        raise BuildError(f"{shown}: resolves to {where}, outside {base}; refusing it")


def _abandoned(path: Path) -> bool:
    try:
        owner = os.open(path / STAGING_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:  # a pull that was just starting, or one from before owner locks
        try:
            return time.time() - path.lstat().st_mtime > STALE_STAGING
        except FileNotFoundError:
            return False
    except OSError:  # a link or something else planted there: not a live pull's
        return True
    try:
        fcntl.lockf(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(owner)

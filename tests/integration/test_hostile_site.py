"""A hostile site: HTTP servers on 127.0.0.1 serve manifests with every attack of issue 11, and a
registry that redirects to another origin. Nothing may be written (or removed) outside the local
tree, no credentials may leave their origin, and every refusal has the right exit code."""

from __future__ import annotations

import base64
import copy
import fcntl
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

import pytest

from helpers import cryostack, fake_sif, make_hello_project, record_built

KEY = "hello/1.0/gcc-cpu"
PASSWORD = "s3cret-registry-pass"


class Site:
    """An HTTP server whose routes the test sets: bytes, or a function that answers the request.
    It records every request (path and Authorization header)."""

    def __init__(self):
        self.routes: Dict[str, object] = {}
        self.seen: List[dict] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                site.seen.append({"path": self.path, "method": self.command,
                                  "authorization": self.headers.get("Authorization")})
                route = site.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                elif callable(route):
                    route(self)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(route)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(route)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def redirect(to: str) -> Callable:
    def answer(handler):
        handler.send_response(302)
        handler.send_header("Location", to)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def endless(handler) -> None:
    """A body with no length that never ends (until the client hangs up, or 1 GB)."""
    handler.send_response(200)
    handler.end_headers()
    block = b"\0" * 65536
    try:
        for _ in range(16384):
            handler.wfile.write(block)
    except OSError:
        pass


def drip(data: bytes) -> Callable:
    """The right bytes, announced, but one every 0.1 s."""
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            for index in range(len(data)):
                handler.wfile.write(data[index:index + 1])
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
    return answer


@pytest.fixture(scope="module")
def site_a(tmp_path_factory) -> Path:
    """Site A's real published tree (read-only to every test)."""
    work = tmp_path_factory.mktemp("site-a")
    project = make_hello_project(work / "a", {"hello": ("-O2", "hello {version}")})
    (project / "build").mkdir()
    record_built(project, KEY, fake_sif(project / "build" / "hello.sif", 120_000, seed=5))
    assert cryostack("--root", str(project), "publish", "--efs-root", str(work / "efs-a")).returncode == 0
    return work / "efs-a"


@pytest.fixture
def world(tmp_path: Path, site_a: Path):
    """The hostile server and another origin, with site A's tree, and a local 'outside' folder
    with a secret that nothing may touch. The local tree to fill is tmp_path/efs-b."""
    os.symlink(site_a, tmp_path / "efs-a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("root-only secret\n")
    os.chmod(outside / "secret", 0o600)
    hostile, other = Site(), Site()
    yield tmp_path, hostile, other
    hostile.close()
    other.close()


def published(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "efs-a" / "manifest.json").read_text())


def sif_bytes(tmp_path: Path) -> bytes:
    return (tmp_path / "efs-a" / published(tmp_path)["images"][KEY]["sif"]["path"]).read_bytes()


def snapshot(tmp_path: Path) -> dict:
    """Every file and link under tmp_path and in site A's tree, except the local tree (efs-b):
    path -> (bytes or link target, mode)."""
    state = {}
    paths = list(tmp_path.rglob("*")) + list((tmp_path / "efs-a").resolve().rglob("*"))
    for path in sorted(paths):
        if path.is_relative_to(tmp_path / "efs-b"):
            continue
        if path.is_symlink():
            state[path] = ("link", os.readlink(path))
        elif path.is_file():
            state[path] = (path.read_bytes(), path.stat().st_mode)
        else:
            state[path] = ("dir", path.stat().st_mode)
    return state


def serve(tmp_path: Path, site: Site, case: str, change: Callable[[dict, dict], None], sif: object = None) -> str:
    """Serve site A's manifest, changed by CHANGE(manifest, entry), with its SIF beside it; returns its URL."""
    manifest = copy.deepcopy(published(tmp_path))
    entry = manifest["images"][KEY]
    relpath = entry["sif"]["path"]
    change(manifest, entry)
    site.routes[f"/{case}/manifest.json"] = json.dumps(manifest, indent=2).encode()
    site.routes[f"/{case}/{relpath}"] = sif_bytes(tmp_path) if sif is None else sif
    return f"{site.origin}/{case}/manifest.json"


def pull(tmp_path: Path, manifest: str, *extra: str, env: dict | None = None):
    return cryostack("pull", "--efs-root", str(tmp_path / "efs-b"), "--manifest", manifest, *extra,
                     cwd=tmp_path, env=dict(os.environ, **(env or {})))


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return lines[0]


def nothing_installed(tmp_path: Path) -> None:
    tree = tmp_path / "efs-b"
    assert not list(tree.rglob("*.sif")), "no SIF and no current.sif may appear"
    assert not list(tree.glob(".pull-*")) and not list(tree.rglob(".*partial*"))


# --- attacks the manifest model refuses: exit 2, nothing fetched, nothing written ----------

SECRET_URL = "file:///{outside}/secret"
REFUSED = [
    ("traversal", lambda m, e: e["sif"].update(path="../../../outside/x.sif"), "must not contain '.' or '..'"),
    ("deep traversal", lambda m, e: e["sif"].update(path="images/hello/1.0/gcc-cpu/../../../../../outside/x.sif"),
     "must not contain '.' or '..'"),
    ("absolute path", lambda m, e: e["sif"].update(path="{outside}/x.sif"), "must be a relative path"),
    ("file URL", lambda m, e: e["sif"].update(path=SECRET_URL), "must be a relative path"),
    ("absolute URL", lambda m, e: e["sif"].update(path="http://127.0.0.1:1/x.sif"), "must be a relative path"),
    ("elsewhere in the tree", lambda m, e: e["sif"].update(path="images/other/1.0/x/a.sif"), "must be a .sif file directly in"),
    ("empty sha256", lambda m, e: e["sif"].update(sha256=""), "sif.sha256: must be 64 lower-case hex digits"),
    ("null sha256", lambda m, e: e["sif"].update(sha256=None), "sif.sha256: Input should be a valid string"),
    ("no sha256", lambda m, e: e["sif"].pop("sha256"), "missing required key 'sha256'"),
    ("no size", lambda m, e: e["sif"].pop("size"), "missing required key 'size'"),
    ("no published", lambda m, e: e.pop("published"), "missing required key 'published'"),
    ("images a list", lambda m, e: m.update(images=[]), "images: Input should be a valid dictionary"),
    ("sif a string", lambda m, e: e.update(sif="x.sif"), "sif: Input should be a valid dictionary"),
    ("command with shell text", lambda m, e: e["commands"].append({"name": "x\n$(touch {outside}/marker)"}),
     "commands[1].name: must be a name"),
    ("command traversal", lambda m, e: e["commands"].append({"name": "../../x"}), "commands[1].name: must be a name"),
    ("key with a newline", lambda m, e: m["images"].update({KEY + "\n$(id)": m["images"][KEY]}),
     "the key must be family/version/variant"),
    ("fingerprint with quotes", lambda m, e: e.update(fingerprint="';touch /tmp/x;'"), "fingerprint: must be 64 lower-case"),
    ("image reference option", lambda m, e: e.update(oci={"registry": "r.example", "repository": "cryostack/hello",
                                                            "digest": "sha256:" + "1" * 64, "references": ["--privileged"]}),
     "oci.references[0]: must be an image reference"),
    ("history outside", lambda m, e: e.update(history=[{"fingerprint": "2" * 64, "published": "2024-01-01T00:00:00Z",
                                                         "sif": {"path": "../../outside/secret", "sha256": "3" * 64,
                                                                 "size": 1}}]), "history[0].sif.path"),
]


def _every_attack(manifest: dict, entry: dict) -> None:
    """The attacks that can share one entry, all at once, plus a second key carrying shell text."""
    for case, change, _ in REFUSED:
        if case in ("traversal", "empty sha256", "no published", "command with shell text", "history outside",
                    "fingerprint with quotes", "image reference option"):
            change(manifest, entry)
    manifest["images"][KEY + "\n$(id)"] = copy.deepcopy(entry)


REFUSED.append(("every attack at once", _every_attack, ""))


@pytest.mark.parametrize("mode", ["http", "file", "registry"])
@pytest.mark.parametrize("case, change, fragment", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_hostile_manifest_is_refused_with_exit_2_and_nothing_written(world, mode, case, change, fragment):
    tmp_path, hostile, other = world
    outside = tmp_path / "outside"

    case_path = case.replace(" ", "-")
    url = serve(tmp_path, hostile, case_path, change)
    route = f"/{case_path}/manifest.json"
    hostile.routes[route] = hostile.routes[route].replace(b"{outside}", str(outside).encode())
    source = url
    if mode == "file":
        source = str(tmp_path / "hostile.json")
        Path(source).write_bytes(hostile.routes[route])
    extra = ["--registry", other.origin.split("//")[1], "--username", "tester"] if mode == "registry" else []
    before = snapshot(tmp_path)
    result = pull(tmp_path, source, *extra, env={"CRYOSTACK_REGISTRY_PASSWORD": PASSWORD})
    if mode == "file":
        Path(source).unlink()
        before.pop(Path(source))
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result)
    assert f"{source}:" in line and fragment in line, line
    assert "verified" not in result.stdout
    assert snapshot(tmp_path) == before
    nothing_installed(tmp_path)
    assert not (outside / "marker").exists() and not (outside / "x.sif").exists()
    assert [s["path"] for s in hostile.seen if s["path"].endswith(".sif")] == [] and other.seen == []


# --- attacks on the transfer: exit 1, nothing installed, nothing left behind -----------------

def test_an_oversized_sif_is_cut_off_at_its_size_while_streaming(world):
    tmp_path, hostile, _ = world
    url = serve(tmp_path, hostile, "endless", lambda m, e: None, sif=endless)
    started = time.monotonic()
    result = pull(tmp_path, url)
    assert time.monotonic() - started < 30, "the download must stop at size + 1 bytes, not read 1 GB"
    assert result.returncode == 1 and "more than the 120000 bytes the manifest says" in one_line(result)
    nothing_installed(tmp_path)


def test_a_sif_announced_larger_than_the_manifest_says_is_not_downloaded(world):
    tmp_path, hostile, _ = world
    url = serve(tmp_path, hostile, "large", lambda m, e: None, sif=sif_bytes(tmp_path) + b"x" * 10_000)
    result = pull(tmp_path, url)
    assert result.returncode == 1 and "the server announces 130000 bytes, the manifest says 120000" in one_line(result)
    nothing_installed(tmp_path)


def test_a_sif_with_another_sha256_is_discarded(world):
    tmp_path, hostile, _ = world
    data = bytearray(sif_bytes(tmp_path))
    data[-1] ^= 0xFF
    url = serve(tmp_path, hostile, "corrupt", lambda m, e: None, sif=bytes(data))
    result = pull(tmp_path, url)
    assert result.returncode == 1 and "does not match the manifest's" in one_line(result)
    assert "verified" not in result.stdout
    nothing_installed(tmp_path)


def test_a_slow_download_is_stopped_by_the_total_timeout(world):
    tmp_path, hostile, _ = world
    url = serve(tmp_path, hostile, "slow", lambda m, e: None, sif=drip(sif_bytes(tmp_path)))
    started = time.monotonic()
    result = pull(tmp_path, url, "--timeout", "2")
    assert time.monotonic() - started < 20
    assert result.returncode == 1 and "not complete after 2s" in one_line(result)
    nothing_installed(tmp_path)


def test_bad_pull_options_are_exit_2(world):
    tmp_path, hostile, _ = world
    url = serve(tmp_path, hostile, "options", lambda m, e: None)
    for option, fragment in ((["--timeout", "-1"], "--timeout"), (["--allow-origin", "file:///etc"], "--allow-origin")):
        result = pull(tmp_path, url, *option)
        assert result.returncode == 2 and fragment in one_line(result)


def test_a_redirect_to_another_origin_is_refused_unless_allowed(world):
    tmp_path, hostile, other = world
    url = serve(tmp_path, hostile, "moved", lambda m, e: None)
    relpath = published(tmp_path)["images"][KEY]["sif"]["path"]
    hostile.routes[f"/moved/{relpath}"] = redirect(f"{other.origin}/cdn/x.sif")
    other.routes["/cdn/x.sif"] = sif_bytes(tmp_path)
    refused = pull(tmp_path, url)
    assert refused.returncode == 1 and f"another origin; refused (allow it with --allow-origin {other.origin}" in one_line(refused)
    assert other.seen == []
    nothing_installed(tmp_path)

    allowed = pull(tmp_path, url, "--allow-origin", other.origin)
    assert allowed.returncode == 0, allowed.stderr
    assert (tmp_path / "efs-b" / relpath).read_bytes() == sif_bytes(tmp_path)

    hostile.routes["/moved/file.json"] = redirect(f"file://{tmp_path}/outside/secret")
    sneaky = pull(tmp_path, f"{hostile.origin}/moved/file.json")
    line = one_line(sneaky)  # urllib itself refuses a redirect to file://, before our handler would
    assert sneaky.returncode == 2 and "file://" in line and ("not allowed" in line or "refused" in line), line


def test_registry_credentials_never_follow_a_redirect_to_another_origin(world):
    tmp_path, hostile, other = world
    digest = "sha256:" + "4" * 64
    registry = Site()
    try:
        path = f"/v2/cryostack/hello/manifests/{digest}"
        registry.routes[path] = redirect(f"{other.origin}{path}")
        url = serve(tmp_path, hostile, "registry", lambda m, e: e.update(
            oci={"registry": "r.example", "repository": "cryostack/hello", "digest": digest}))
        result = pull(tmp_path, url, "--registry", registry.origin.split("//")[1], "--username", "tester",
                      env={"CRYOSTACK_REGISTRY_PASSWORD": PASSWORD})
    finally:
        registry.close()
    assert result.returncode == 1, result.stderr
    token = base64.b64encode(f"tester:{PASSWORD}".encode()).decode()
    assert [s["authorization"] for s in registry.seen] == [f"Basic {token}"], "the registry itself gets the credentials"
    assert [s["path"] for s in other.seen] == [path], "the redirect is followed ..."
    assert [s["authorization"] for s in other.seen] == [None], "... without the credentials"
    assert PASSWORD not in result.stdout + result.stderr
    nothing_installed(tmp_path)


def test_a_manifest_redirected_to_another_origin_is_refused(world):
    tmp_path, hostile, other = world
    serve(tmp_path, other, "real", lambda m, e: None)
    hostile.routes["/moved/manifest.json"] = redirect(f"{other.origin}/real/manifest.json")
    result = pull(tmp_path, f"{hostile.origin}/moved/manifest.json")
    assert result.returncode == 2 and "another origin; refused" in one_line(result)
    assert other.seen == []


# --- the local tree: planted links, the lock, leftovers, prune --------------------------------

def _plant(tmp_path: Path, kind: str) -> Path:
    """A link planted in the local tree pointing outside; returns what it points at."""
    tree, outside = tmp_path / "efs-b", tmp_path / "outside"
    relpath = published(tmp_path)["images"][KEY]["sif"]["path"]
    tree.mkdir(exist_ok=True)
    if kind == "lock file":
        os.symlink(outside / "created-by-lock", tree / ".cryostack.lock")
        return outside / "created-by-lock"
    if kind == "manifest":
        os.symlink(outside / "secret", tree / "manifest.json")
        return outside / "secret"
    if kind == "images folder":
        os.symlink(outside, tree / "images")
        return outside
    if kind == "variant folder":
        (tree / relpath).parent.parent.mkdir(parents=True)
        os.symlink(outside, (tree / relpath).parent)
        return outside
    (tree / relpath).parent.mkdir(parents=True)
    if kind == "sif file":
        os.symlink(outside / "secret", tree / relpath)
    elif kind == "current.sif":
        os.symlink(outside / "secret", (tree / relpath).parent / "current.sif")
    elif kind == "partial name":
        os.symlink(outside / "secret", (tree / relpath).parent / ".current.sif.partial-1")
    return outside / "secret"


@pytest.mark.parametrize("kind, code", [("lock file", 1), ("manifest", 1), ("images folder", 1), ("variant folder", 1),
                                        ("sif file", 0), ("current.sif", 0), ("partial name", 0)])
def test_links_planted_in_the_tree_are_never_followed(world, kind, code):
    tmp_path, hostile, _ = world
    url = serve(tmp_path, hostile, "plain", lambda m, e: None)
    target = _plant(tmp_path, kind)
    before = snapshot(tmp_path)
    result = pull(tmp_path, url)
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "symbolic link" in one_line(result) and "refusing to follow it" in result.stderr
    else:  # the link is replaced (or removed), never written through
        relpath = published(tmp_path)["images"][KEY]["sif"]["path"]
        sif = tmp_path / "efs-b" / relpath
        assert not sif.is_symlink() and sif.read_bytes() == sif_bytes(tmp_path)
        assert os.readlink(sif.parent / "current.sif") == sif.name
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "outside" / "created-by-lock").exists(), "a dangling lock link must not create its target"
    assert (tmp_path / "outside" / "secret").read_text() == "root-only secret\n"
    assert target.exists() == (kind != "lock file")


def test_the_lock_is_free_while_downloading_and_a_killed_pull_leaves_nothing_behind(world):
    tmp_path, hostile, _ = world
    url = serve(tmp_path, hostile, "slow", lambda m, e: None, sif=drip(sif_bytes(tmp_path)))
    tree = tmp_path / "efs-b"
    puller = subprocess.Popen([sys.executable, "-m", "cryostack", "pull", "--efs-root", str(tree), "--manifest", url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(tree.glob(".pull-*/*.sif")):
        assert time.monotonic() < deadline and puller.poll() is None, "the pull never started downloading"
        time.sleep(0.05)
    time.sleep(0.5)
    with open(tree / ".cryostack.lock", "a+") as lock:  # what a publisher or prune does meanwhile
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if the download held the lock
        fcntl.lockf(lock, fcntl.LOCK_UN)
    puller.send_signal(signal.SIGKILL)
    puller.wait()
    assert list(tree.glob(".pull-*")), "a killed pull leaves its staging folder"

    hostile.routes[f"/slow/{published(tmp_path)['images'][KEY]['sif']['path']}"] = sif_bytes(tmp_path)
    result = pull(tmp_path, url)
    assert result.returncode == 0, result.stderr
    assert list(tree.glob(".pull-*")) == [] and list(tree.rglob(".*partial*")) == []


def test_a_remote_entry_without_published_never_switches_current(world):
    tmp_path, hostile, _ = world
    good = pull(tmp_path, serve(tmp_path, hostile, "good", lambda m, e: None))
    assert good.returncode == 0, good.stderr
    tree = tmp_path / "efs-b"
    relpath = published(tmp_path)["images"][KEY]["sif"]["path"]
    before = (tree / "manifest.json").read_bytes(), os.readlink((tree / relpath).parent / "current.sif")
    newer = "5" * 64
    url = serve(tmp_path, hostile, "unpublished", lambda m, e: (
        e.pop("published"), e.update(fingerprint=newer), e["sif"].update(path=f"images/{KEY}/{newer[:12]}.sif")))
    result = pull(tmp_path, url)
    assert result.returncode == 2 and "missing required key 'published'" in one_line(result)
    assert ((tree / "manifest.json").read_bytes(), os.readlink((tree / relpath).parent / "current.sif")) == before
    again = pull(tmp_path, serve(tmp_path, hostile, "good", lambda m, e: None))
    assert again.returncode == 0 and "already here" in again.stdout


def _local_tree_with_history(tmp_path: Path, hostile: Site, history_path: str) -> Path:
    """Pull the good image, then give the local manifest a history entry at HISTORY_PATH."""
    assert pull(tmp_path, serve(tmp_path, hostile, "good", lambda m, e: None)).returncode == 0
    tree = tmp_path / "efs-b"
    local = json.loads((tree / "manifest.json").read_text())
    local["images"][KEY]["history"] = [{"fingerprint": "6" * 64, "published": "2024-01-01T00:00:00Z",
                                        "sif": {"path": history_path, "sha256": "7" * 64, "size": 17}}]
    (tree / "manifest.json").write_text(json.dumps(local, indent=2))
    return tree


@pytest.mark.parametrize("history_path", ["../../outside/secret", "{outside}/secret", "images/../../outside/secret"])
def test_prune_never_deletes_what_a_manifest_names_outside_the_tree(world, history_path):
    tmp_path, hostile, _ = world
    tree = _local_tree_with_history(tmp_path, hostile, history_path.replace("{outside}", str(tmp_path / "outside")))
    result = cryostack("prune", "--efs-root", str(tree), "--keep", "1")
    assert result.returncode == 2 and "history[0].sif.path" in one_line(result)
    assert (tmp_path / "outside" / "secret").read_text() == "root-only secret\n"


@pytest.mark.parametrize("planted", ["link to a file", "link to a folder"])
def test_prune_leaves_links_planted_at_owned_paths_alone(world, planted):
    tmp_path, hostile, _ = world
    owned = f"images/{KEY}/{'6' * 12}.sif"
    tree = _local_tree_with_history(tmp_path, hostile, owned)
    if planted == "link to a file":
        os.symlink(tmp_path / "outside" / "secret", tree / owned)
    else:  # the whole variant folder is swapped for a link: the current SIF goes with it
        folder = (tree / owned).parent
        os.rename(folder, tmp_path / "moved")
        (tmp_path / "outside" / f"{'6' * 12}.sif").write_text("not the tree's\n")
        os.symlink(tmp_path / "outside", folder)
    result = cryostack("prune", "--efs-root", str(tree), "--keep", "1")
    assert result.returncode == 1
    message = one_line(result)
    assert "not a regular file; left alone" in message or "refusing to follow it" in message
    assert (tmp_path / "outside" / "secret").read_text() == "root-only secret\n"
    assert (tmp_path / "outside" / f"{'6' * 12}.sif").exists() or planted == "link to a file"


def test_prune_removes_an_owned_old_sif_inside_the_tree(world):
    tmp_path, hostile, _ = world
    owned = f"images/{KEY}/{'6' * 12}.sif"
    tree = _local_tree_with_history(tmp_path, hostile, owned)
    (tree / owned).write_bytes(b"old image")
    stray = tree / "images" / KEY / "not-in-the-manifest.sif"
    stray.write_bytes(b"someone else's")
    result = cryostack("prune", "--efs-root", str(tree), "--keep", "1")
    assert result.returncode == 0, result.stderr
    assert not (tree / owned).exists() and stray.exists()
    assert json.loads((tree / "manifest.json").read_text())["images"][KEY]["history"] == []


def test_registry_credentials_follow_a_redirect_that_stays_on_the_registry(world):
    from cryostack.publish.registry import Registry, remote_digest
    digest = "sha256:" + "8" * 64
    registry = Site()
    try:
        def found(handler):
            handler.send_response(200)
            handler.send_header("Docker-Content-Digest", digest)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        registry.routes["/v2/cryostack/hello/manifests/old"] = redirect(f"{registry.origin}/v2/cryostack/hello/manifests/new")
        registry.routes["/v2/cryostack/hello/manifests/new"] = found
        remote = Registry(registry.origin.split("//")[1], "tester", PASSWORD)
        assert remote_digest(remote, "cryostack/hello", "old") == digest
    finally:
        registry.close()
    token = base64.b64encode(f"tester:{PASSWORD}".encode()).decode()
    assert [s["authorization"] for s in registry.seen] == [f"Basic {token}"] * 2

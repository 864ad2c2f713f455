"""Fixtures: a disposable copy of the checkout, and the real services integration tests use."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from cryostack.baseimage import make_base_image
from cryostack.engine.base import Engine, connect
from cryostack.errors import BuildError
from cryostack.settings import LOCAL_DEBIAN
from helpers import FAMILIES, ROOT, forget_images, make_hello_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of images/ and recipes/ that a test may break."""
    for name in ("images", "recipes"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def _unavailable(reason: str):
    # In CI the set-up starts every service, so a missing one is a failure, not a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def host_mpirun() -> str:
    """The host's Open MPI launcher, as RELION calls it (RELION_MPIRUN)."""
    path = shutil.which("mpirun")
    if not path:
        _unavailable("needs the host's Open MPI: apt-get install openmpi-bin (ci/setup.sh does)")
    return path


@pytest.fixture(scope="session")
def engine() -> Engine:
    try:
        return connect()
    except BuildError as exc:
        _unavailable(f"needs a Docker engine: {exc}")


@pytest.fixture(scope="session")
def base_image(engine: Engine, tmp_path_factory) -> str:
    """The local Debian base image, made with debootstrap if this engine does not have it yet."""
    work = tmp_path_factory.mktemp("base")
    make_base_image(engine, LOCAL_DEBIAN, "bookworm", work, work / "debootstrap.log")
    return LOCAL_DEBIAN


@pytest.fixture(scope="session")
def hello_project(tmp_path_factory, engine: Engine, base_image: str):
    root = make_hello_project(tmp_path_factory.mktemp("hello"))
    yield root
    forget_images(engine, *FAMILIES)


@pytest.fixture(scope="session")
def trixie_base(engine: Engine, tmp_path_factory) -> str:
    """Debian trixie, the base of the containerised Apptainer (made with debootstrap if missing)."""
    work = tmp_path_factory.mktemp("trixie")
    make_base_image(engine, "local/debian:trixie", "trixie", work, work / "debootstrap.log")
    return "local/debian:trixie"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 from an authenticating registry is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {seconds}s")


@pytest.fixture(scope="session")
def moto_ecr(tmp_path_factory):
    """A moto server for the ECR control API; returns the environment that points boto3 at it."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        _unavailable("needs moto_server (pip install 'moto[server]')")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    wait_for_http(f"http://127.0.0.1:{port}/")
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1"}
    yield env
    server.terminate()
    server.wait()


@dataclass
class LocalRegistry:
    url: str
    username: str
    password: str
    readonly_url: str


@pytest.fixture(scope="session")
def registry(tmp_path_factory, moto_ecr) -> LocalRegistry:
    """Debian's docker-registry on 127.0.0.1 with htpasswd users: a tester, and ECR's user with the
    token moto hands out (so pushes 'to ECR' land here). A read-only twin serves the same storage."""
    binary, htpasswd = shutil.which("docker-registry"), shutil.which("htpasswd")
    if not binary or not htpasswd:
        _unavailable("needs docker-registry and htpasswd (apt-get install docker-registry apache2-utils)")
    import base64
    import boto3
    token = boto3.client("ecr", endpoint_url=moto_ecr["AWS_ENDPOINT_URL"], region_name=moto_ecr["AWS_REGION"],
                         aws_access_key_id="testing", aws_secret_access_key="testing").get_authorization_token()
    ecr_user, _, ecr_password = base64.b64decode(token["authorizationData"][0]["authorizationToken"]).decode().partition(":")
    work = tmp_path_factory.mktemp("registry")
    users = [("tester", "s3cret-pass"), (ecr_user, ecr_password)]
    (work / "htpasswd").write_text("".join(
        subprocess.run([htpasswd, "-Bbn", user, password], capture_output=True, text=True, check=True).stdout.strip() + "\n"
        for user, password in users))
    servers, urls = [], []
    for readonly in (False, True):
        port = free_port()
        config = work / f"config-{port}.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
            f"  maintenance:\n    readonly:\n      enabled: {str(readonly).lower()}\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
            f"auth:\n  htpasswd:\n    realm: cryostack-tests\n    path: {work / 'htpasswd'}\n")
        log = open(work / f"registry-{port}.log", "w")
        servers.append(subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT))
        wait_for_http(f"http://127.0.0.1:{port}/v2/")
        urls.append(f"127.0.0.1:{port}")
    yield LocalRegistry(urls[0], "tester", "s3cret-pass", urls[1])
    for server in servers:
        server.terminate()
        server.wait()


@pytest.fixture(scope="session")
def open_registry(tmp_path_factory) -> str:
    """Debian's docker-registry on 127.0.0.1 without authentication (as a CI cache registry runs); host:port."""
    binary = shutil.which("docker-registry")
    if not binary:
        _unavailable("needs docker-registry (apt-get install docker-registry)")
    work, port = tmp_path_factory.mktemp("open-registry"), free_port()
    (work / "config.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
                                     f"http:\n  addr: 127.0.0.1:{port}\n")
    server = subprocess.Popen([binary, "serve", str(work / "config.yml")], stdout=open(work / "log", "w"),
                              stderr=subprocess.STDOUT)
    wait_for_http(f"http://127.0.0.1:{port}/v2/")
    yield f"127.0.0.1:{port}"
    server.terminate()
    server.wait()


@dataclass
class Slurm:
    conf: Path
    env: dict
    partitions: tuple

    def submit(self, *args: str, cwd: Path) -> str:
        result = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env=self.env,
                                capture_output=True, text=True, check=True)
        return result.stdout.strip().split(";")[0]

    def wait(self, job: str, seconds: float = 120) -> str:
        """Poll until the job ends; returns its final state."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            shown = subprocess.run(["scontrol", "show", "job", job], env=self.env, capture_output=True, text=True)
            state = next((w.split("=", 1)[1] for w in shown.stdout.split() if w.startswith("JobState=")), "UNKNOWN")
            if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "UNKNOWN"):
                return state
            time.sleep(0.3)
        raise TimeoutError(f"job {job} still not finished after {seconds}s")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A one-node Slurm on localhost (munge, slurmctld, slurmd) with partitions g5, g4dn and c6i,
    and four fake GPUs (character devices) so that --gres=gpu:N works."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
        if not shutil.which(tool):
            _unavailable(f"needs Slurm and munge (apt-get install munge slurmctld slurmd slurm-client libpmix2 libpmix-dev): no {tool}")
    # munged wants every directory above its socket searchable: pytest's own tmp dirs are 0700.
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="cryostack-slurm-"))
    os.chmod(work, 0o755)
    for sub in ("state", "spool", "dev"):
        (work / sub).mkdir()
    key = work / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    munge = work / "munge.socket"
    subprocess.run(["munged", f"--key-file={key}", f"--socket={munge}", f"--pid-file={work / 'munged.pid'}",
                    f"--seed-file={work / 'munge.seed'}", f"--log-file={work / 'munged.log'}"], check=True)
    for index in range(4):
        subprocess.run(["mknod", str(work / "dev" / f"nvidia{index}"), "c", "1", "3"], check=True)
    host = socket.gethostname().split(".")[0]
    node = dict(word.split("=", 1) for word in subprocess.run(["slurmd", "-C"], capture_output=True, text=True,
                                                              check=True).stdout.split() if "=" in word)
    memory = int(int(node["RealMemory"]) * 0.95)
    partitions = ("g5", "g4dn", "c6i")
    conf = work / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=cryostack-test", "SlurmctldHost=localhost", "SlurmUser=root",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", "AuthType=auth/munge",
        f"AuthInfo=socket={munge}", f"StateSaveLocation={work / 'state'}", f"SlurmdSpoolDir={work / 'spool'}",
        f"SlurmctldPidFile={work / 'slurmctld.pid'}", f"SlurmdPidFile={work / 'slurmd.pid'}",
        f"SlurmctldLogFile={work / 'slurmctld.log'}", f"SlurmdLogFile={work / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory", "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none", "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
        # Job ids that another test Slurm on this machine is unlikely to use at the same time: Slurm's
        # PMIx plugin names its per-step directories in /tmp after the job id alone.
        f"FirstJobId={random.randint(1000, 60_000_000)}",
        "ReturnToService=2", "MpiDefault=none", "GresTypes=gpu", f"DefMemPerCPU={memory // int(node['CPUs'])}",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={node['CPUs']} Boards={node.get('Boards', 1)} "
        f"SocketsPerBoard={node['SocketsPerBoard']} CoresPerSocket={node['CoresPerSocket']} "
        f"ThreadsPerCore={node['ThreadsPerCore']} RealMemory={memory} Gres=gpu:4 State=UNKNOWN",
        *[f"PartitionName={p} Nodes={host} MaxTime=INFINITE State=UP" for p in partitions],
    ]) + "\n")
    (work / "gres.conf").write_text(f"AutoDetect=off\nNodeName={host} Name=gpu File={work / 'dev'}/nvidia[0-3]\n")
    env = dict(os.environ, SLURM_CONF=str(conf))
    subprocess.run(["slurmctld", "-c", "-f", str(conf)], env=env, check=True)
    subprocess.run(["slurmd", "-f", str(conf)], env=env, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True).stdout.split()
        if state and all(s == "idle" for s in state):
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"slurmd never became idle: {state}; see {work}/slurmd.log")
    yield Slurm(conf, env, partitions)
    for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
        try:
            os.kill(int((work / pid_file).read_text().strip()), 15)
        except (OSError, ValueError):
            pass
    time.sleep(0.5)
    shutil.rmtree(work, ignore_errors=True)

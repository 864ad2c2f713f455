"""Pushing to a real OCI registry (Debian's docker-registry) and to ECR (moto for the API)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from cryostack.engine.base import connect
from cryostack.publish.registry import Registry, remote_digest
from helpers import cryostack, edit_yaml, forget_images, make_hello_project

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def built(tmp_path_factory, base_image):
    """A project whose test images are built: a redistributable one and one that is not."""
    root = make_hello_project(tmp_path_factory.mktemp("push"), {
        "hello": ("-O2", "hello {version}"),
        "secret": ("-O2", "hello {version}"),
    })
    edit_yaml(root / "images" / "secret.yaml", lambda d: d["licence"].update(
        name="Some Lab Licence", redistributable=False, note="licence-gated download"))
    result = cryostack("--root", str(root), "build")
    assert result.returncode == 0, result.stdout + result.stderr
    yield root
    forget_images(connect(), "secret")
    forget_images(connect(), "hello", pushed_only=True)  # the session's hello images serve other modules


def run_push(root: Path, *args: str, password: str | None = None, env: dict | None = None):
    environment = dict(os.environ, **(env or {}))
    if password is not None:
        environment["CRYOSTACK_REGISTRY_PASSWORD"] = password
    return cryostack("--root", str(root), "push", *args, env=environment)


def oci_of(root: Path, key: str) -> dict:
    return json.loads((root / "build" / "record.json").read_text())["images"][key]["oci"]


def test_push_to_an_oci_registry_confirms_and_records_the_digest(built, registry):
    result = run_push(built, "--registry", registry.url, "--username", registry.username, "--only", "hello",
                      password=registry.password)
    assert result.returncode == 0, result.stdout + result.stderr
    oci = oci_of(built, "hello/1.0/gcc-cpu")
    assert oci["digest"].startswith("sha256:") and oci["pushed"] is True
    fp_tag = oci["references"][0].rsplit(":", 1)[1]
    assert oci["references"] == [f"{registry.url}/cryostack/hello:{fp_tag}", f"{registry.url}/cryostack/hello:1.0-gcc-cpu"]
    remote = Registry(registry.url, registry.username, registry.password)
    assert remote_digest(remote, "cryostack/hello", fp_tag) == oci["digest"]
    assert remote_digest(remote, "cryostack/hello", "1.0-gcc-cpu") == oci["digest"]
    assert registry.password not in result.stdout + result.stderr

    again = run_push(built, "--registry", registry.url, "--username", registry.username, "--only", "hello",
                     password=registry.password)
    assert again.returncode == 0 and "already in the registry" in again.stdout


def test_wrong_credentials_are_a_clear_error_without_the_password(built, registry):
    result = run_push(built, "--registry", registry.url, "--username", registry.username, "--only", "hello",
                      password="not-the-password")
    assert result.returncode == 1
    assert "credentials refused" in result.stderr and "Traceback" not in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr


def test_unreachable_registry(built):
    result = run_push(built, "--registry", "127.0.0.1:9", "--only", "hello")
    assert result.returncode == 1
    assert "registry 127.0.0.1:9 cannot be reached" in result.stderr


def test_a_push_error_in_the_engine_stream_is_an_error(built, registry):
    # The read-only twin answers manifest look-ups but refuses uploads: the failure arrives only
    # as an {'error': ...} item in the Docker SDK's push stream.
    edit_yaml(built / "images" / "hello.yaml", lambda d: d["variants"]["gcc-cpu"].update(cpu_flags="-O3"))
    try:
        assert cryostack("--root", str(built), "build", "--only", "hello").returncode == 0
        result = run_push(built, "--registry", registry.readonly_url, "--username", registry.username,
                          "--only", "hello", password=registry.password)
    finally:
        edit_yaml(built / "images" / "hello.yaml", lambda d: d["variants"]["gcc-cpu"].update(cpu_flags="-O2"))
    assert result.returncode == 1
    assert "1 push(es) failed: hello/1.0/gcc-cpu: push " in result.stderr
    assert registry.password not in result.stdout + result.stderr


def test_non_redistributable_images_are_refused_by_public_registries(built, registry):
    selected = run_push(built, "--registry", registry.url, "--username", registry.username, "--public",
                        "--only", "secret", password=registry.password)
    assert selected.returncode == 2
    assert "refusing to push to a public registry: secret/1.0/gcc-cpu: Some Lab Licence does not allow redistribution" in selected.stderr
    assert remote_digest(Registry(registry.url, registry.username, registry.password), "cryostack/secret", "1.0-gcc-cpu") is None

    everything = run_push(built, "--registry", registry.url, "--username", registry.username, "--public",
                          password=registry.password)
    assert everything.returncode == 0, everything.stderr
    assert "not pushed (public registry): secret/1.0/gcc-cpu" in everything.stdout
    private = run_push(built, "--registry", registry.url, "--username", registry.username, "--only", "secret",
                       password=registry.password)
    assert private.returncode == 0, private.stderr


def test_push_to_ecr_creates_the_repository_and_never_shows_the_token(built, registry, moto_ecr):
    result = run_push(built, "--ecr", "--registry", registry.url, "--only", "hello", env=moto_ecr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ECR repository cryostack/hello created" in result.stdout
    ecr = boto3.client("ecr", endpoint_url=moto_ecr["AWS_ENDPOINT_URL"], region_name=moto_ecr["AWS_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    repository = ecr.describe_repositories(repositoryNames=["cryostack/hello"])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"]["scanOnPush"] is True
    rules = json.loads(ecr.get_lifecycle_policy(repositoryName="cryostack/hello")["lifecyclePolicyText"])["rules"]
    assert {r["selection"]["tagStatus"] for r in rules} == {"untagged", "any"}
    oci = oci_of(built, "hello/1.0/gcc-cpu")
    assert len(oci["references"]) == 1, "immutable tags: only the fingerprint tag"
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    import base64
    password = base64.b64decode(token).decode().split(":", 1)[1]
    log = (built / "build" / "logs" / "push.log").read_text()
    for text in (result.stdout, result.stderr, log):
        assert password not in text and token not in text

    again = run_push(built, "--ecr", "--registry", registry.url, "--only", "hello", env=moto_ecr)
    assert again.returncode == 0 and "created" not in again.stdout


def test_a_ci_shard_imports_layers_another_shard_pushed(tmp_path, base_image, open_registry, engine):
    """Shard one builds with --inline-cache and pushes; shard two builds with --cache-from that registry,
    and BuildKit takes the layers' cache from it."""
    root = make_hello_project(tmp_path, {"shard": ("-O2", "hello {version}")})
    first = cryostack("--root", str(root), "build", "--inline-cache")
    assert first.returncode == 0, first.stdout + first.stderr
    pushed = cryostack("--root", str(root), "push", "--registry", open_registry)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    for tag in engine.images("cryostack/shard"):  # shard two's engine has none of shard one's images
        engine.untag(tag)
    second = cryostack("--root", str(root), "build", "--cache-from", open_registry)
    assert second.returncode == 0, second.stdout + second.stderr
    forget_images(engine, "shard")
    log = (root / "build" / "logs" / "shard_1.0_gcc-cpu.log").read_text()
    assert f"importing cache manifest from {open_registry}/cryostack/shard:1.0-gcc-cpu" in log
    assert "failed to import cache" not in log.lower()


def test_a_push_without_the_build_logs_folder_makes_it(built, registry):
    import shutil
    shutil.rmtree(built / "build" / "logs", ignore_errors=True)
    result = run_push(built, "--registry", registry.url, "--username", registry.username, "--only", "hello",
                      password=registry.password)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (built / "build" / "logs" / "push.log").is_file()

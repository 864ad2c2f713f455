"""cryostack's task map (`invoke --list`). Thin by design: parse options, call cryostack.commands."""

import sys
from pathlib import Path

from invoke import Collection, task

from cryostack import commands
from cryostack.settings import BuildSettings

ROOT = Path(__file__).resolve().parent
ONLY = "family[/version[/variant]] globs, comma-separated (e.g. relion/3.1.3/gcc-cpu, 'relion/*')"
SELECTION_HELP = {
    "only": ONLY,
    "base-image": "Debian base image for GCC builds (default local/debian:bookworm, made by `invoke base-image`)",
    "build-dir": "where rendered recipes go (default build/)",
}


def _settings(base_image=None, build_dir=None):
    return BuildSettings.from_env(base_image=base_image, build_dir=build_dir)


@task(help=SELECTION_HELP)
def render(c, only=None, base_image=None, build_dir=None):
    """Render Dockerfile, Apptainer definition and build script for every matrix entry."""
    with commands.reported_errors():
        commands.render(commands.Project.locate(ROOT), _settings(base_image, build_dir), only)


@task(help=dict(SELECTION_HELP, json="print JSON (what CI shards the build on)"))
def matrix(c, only=None, json=False, base_image=None, build_dir=None):
    """Print the build matrix: family, version, variant, instance families, fingerprint, status."""
    with commands.reported_errors():
        commands.matrix(commands.Project.locate(ROOT), _settings(base_image, build_dir), only, as_json=json)


@task(help=SELECTION_HELP)
def lint(c, only=None, base_image=None, build_dir=None):
    """Render, then run hadolint on every Dockerfile and check every definition file and build script."""
    with commands.reported_errors():
        commands.lint(commands.Project.locate(ROOT), _settings(base_image, build_dir), only)


@task(help={"slow": "also run the slow tests (full RELION and CTFFIND builds)", "k": "only tests matching this expression"})
def test(c, slow=False, k=None):
    """Run the test suite (real services; slow builds only with --slow)."""
    marker = "" if slow else "-m 'not slow'"
    select = f"-k {k!r}" if k else ""
    c.run(f"{sys.executable} -m pytest {marker} {select}", pty=False)


@task(help={"suite": "Debian suite to bootstrap (default bookworm)", "force": "make it again even if it exists"})
def base_image(c, suite="bookworm", force=False):
    """Make the local Debian base image (debootstrap + docker import); no registry needed."""
    with commands.reported_errors():
        commands.base_image(commands.Project.locate(ROOT), _settings(), suite=suite, force=force)


BUILD_HELP = dict(
    SELECTION_HELP,
    jobs="how many images to build at once (default 1)",
    keep_going="when one image fails, build every other one anyway",
    dry_run="print what would be built and why, build nothing",
)


@task(help=BUILD_HELP)
def build(c, only=None, jobs=1, keep_going=False, dry_run=False, base_image=None, build_dir=None):
    """Build and verify the selected images that are out of date."""
    with commands.reported_errors():
        commands.build(commands.Project.locate(ROOT), _settings(base_image, build_dir), only,
                       jobs=jobs, keep_going=keep_going, dry_run=dry_run)


@task(help={k: v for k, v in BUILD_HELP.items() if k != "only"})
def build_all(c, jobs=1, keep_going=False, dry_run=False, base_image=None, build_dir=None):
    """Build and verify every out-of-date image; reports which entries cannot be built here and why."""
    with commands.reported_errors():
        commands.build(commands.Project.locate(ROOT), _settings(base_image, build_dir), None,
                       jobs=jobs, keep_going=keep_going, dry_run=dry_run, everything=True)


@task(help={"only": ONLY, "build-dir": SELECTION_HELP["build-dir"]})
def sif(c, only=None, build_dir=None):
    """Convert built images to Apptainer SIF files (host apptainer, else a containerised one) and smoke-test them."""
    with commands.reported_errors():
        commands.sif(commands.Project.locate(ROOT), _settings(None, build_dir), only)


@task
def bench(c):
    """Measure no-op build-all time, rebuilds after a recipe edit, RELION stage sizes and SIF conversion; print ratios."""
    with commands.reported_errors():
        commands.bench(commands.Project.locate(ROOT), _settings())


PUBLISH_HELP = {
    "efs-root": "root of the shared image store, e.g. /efs/cryostack",
    "only": ONLY,
    "group": "group that owns the published files (default: the publisher's)",
    "file-mode": "mode of published files (default 0444)",
    "dir-mode": "mode of published directories (default 0755)",
}


@task(help=PUBLISH_HELP)
def publish(c, efs_root=None, only=None, group=None, file_mode="0444", dir_mode="0755"):
    """Publish verified SIF files to the EFS tree: versioned files, current.sif links, manifest.json."""
    with commands.reported_errors():
        commands.publish(commands.Project.locate(ROOT), _settings(), efs_root, only,
                         group=group, file_mode=file_mode, dir_mode=dir_mode)


@task(help={"efs-root": PUBLISH_HELP["efs-root"], "keep": "how many images to keep per variant, current included"})
def prune(c, efs_root=None, keep=3):
    """Remove old published SIFs, keeping the newest KEEP per variant (never the current one)."""
    with commands.reported_errors():
        commands.prune(efs_root, keep)


@task(help={
    "registry": "host[:port] of an OCI registry (with --ecr: an endpoint overriding the token's)",
    "ecr": "push to Amazon ECR (repositories created with immutable tags, scan on push, lifecycle)",
    "region": "AWS region for ECR (default: the standard AWS chain)",
    "profile": "AWS profile for ECR (default: the standard AWS chain)",
    "public": "the registry is public: images whose licence forbids redistribution are refused",
    "username": "registry user; the password is read from $CRYOSTACK_REGISTRY_PASSWORD",
    "only": ONLY,
})
def push(c, registry=None, ecr=False, region=None, profile=None, public=False, username=None, only=None):
    """Push built images to ECR or any OCI registry; confirm the digests; record them for publish."""
    with commands.reported_errors():
        commands.push(commands.Project.locate(ROOT), _settings(), registry, only, public=public,
                      username=username, ecr=ecr, region=region, profile=profile)


@task(help={
    "efs-root": "the local tree to fill",
    "manifest": "path or http(s) URL of the other site's manifest.json",
    "only": ONLY,
    "registry": "pull OCI images by digest from this registry and make the SIF files here",
    "username": "registry user; the password is read from $CRYOSTACK_REGISTRY_PASSWORD",
    "group": PUBLISH_HELP["group"],
    "allow-origin": "another origin (scheme://host[:port]) SIF downloads may be redirected to; repeatable",
    "timeout": "seconds one download may take (default 3600)",
}, iterable=["allow_origin"])
def pull(c, efs_root=None, manifest=None, only=None, registry=None, username=None, group=None, allow_origin=None,
         timeout=None):
    """Fill a local EFS tree from another site's published images, verifying every digest and sha256."""
    with commands.reported_errors():
        commands.pull(efs_root, manifest, only, registry_url=registry, username=username, group=group, root=ROOT,
                      allow_origins=allow_origin or (), timeout=timeout)


SITE_HELP = "site file (default cluster-configs/site.example.yaml)"


@task(help={"site": SITE_HELP, "output": "write the YAML here (default: print it)"})
def config(c, site=None, output=None):
    """Render the site's ParallelCluster v3 config and validate it with aws-parallelcluster's schema."""
    with commands.reported_errors():
        commands.cluster_config(commands.Project.locate(ROOT), site, output)


@task(help={"site": SITE_HELP, "manifest": "published manifest.json (default: the site's image store)",
            "prefix": "where bin/, qsub/ and modules/ go (default: the site's cluster_prefix)"})
def wrappers(c, site=None, manifest=None, prefix=None):
    """Generate per-partition wrappers and dispatchers, RELION qsub templates and Lmod module files."""
    with commands.reported_errors():
        commands.cluster_wrappers(commands.Project.locate(ROOT), site, manifest, prefix)


namespace = Collection(render, matrix, lint, test, base_image, build, build_all, sif, bench, publish, prune,
                       push, pull, Collection("cluster", config, wrappers))

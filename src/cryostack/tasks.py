"""The one task collection: `invoke` (through the checkout's tasks.py) and the `cryostack` console
script (an Invoke Program) both serve it, so names, options and help are declared once, here.

Tasks only parse options and call cryostack.app; errors become one line and an exit code there.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from invoke import Argument, Collection, Program, task
from invoke.exceptions import ParseError

from . import __version__
from .app import cluster, images, store
from .app.console import reported_errors
from .project import Project
from .settings import BuildSettings

ONLY = "family[/version[/variant]] globs, comma-separated (e.g. relion/5.0.1/gcc-cpu, 'relion/*')"
SELECTION = {
    "only": ONLY,
    "base-image": "Debian base image for GCC builds (default local/debian:bookworm, made by `base-image`)",
    "build-dir": "where rendered recipes, logs and the build record go (default build/)",
}
BUILDING = dict(
    SELECTION,
    jobs="how many images to build at once (default 1)",
    keep_going="when one image fails, build every other one anyway",
    dry_run="print what would be built and why, build nothing",
    cache_from="registry HOST[:PORT][/PATH] whose <repository>:<version>-<variant> images lend their layers (CI shards)",
    inline_cache="store the build cache in each image, so that pushing it makes it a --cache-from for others",
)
TREE = {
    "efs-root": "root of the shared image store, e.g. /efs/cryostack",
    "group": "group that owns the published files (default: the publisher's)",
    "file-mode": "mode of published files (default 0444)",
    "dir-mode": "mode of published directories (default 0755)",
}
REGISTRY_USER = "registry user; the password is read from $CRYOSTACK_REGISTRY_PASSWORD"
SITE = "site file (default cluster-configs/site.example.yaml)"


def _project(c) -> Project:
    return Project.locate(c.config.cryostack.root)


def _settings(base_image: Optional[str] = None, build_dir: Optional[str] = None) -> BuildSettings:
    return BuildSettings.from_env(base_image=base_image, build_dir=build_dir)


@task(help=SELECTION)
def render(c, only=None, base_image=None, build_dir=None):
    """Render Dockerfile, Apptainer definition and build script for every matrix entry."""
    with reported_errors():
        images.render(_project(c), _settings(base_image, build_dir), only)


@task(help=dict(SELECTION, json="print JSON (what CI shards the build on)"))
def matrix(c, only=None, json=False, base_image=None, build_dir=None):
    """Print the build matrix: family, version, variant, instance families, fingerprint, status."""
    with reported_errors():
        images.matrix(_project(c), _settings(base_image, build_dir), only, as_json=json)


@task(help=SELECTION)
def lint(c, only=None, base_image=None, build_dir=None):
    """Render, then run hadolint on every Dockerfile and check every definition file and build script."""
    with reported_errors():
        images.lint(_project(c), _settings(base_image, build_dir), only)


@task(help={"suite": "Debian suite to bootstrap (default bookworm)", "force": "make it again even if it exists"})
def base_image(c, suite="bookworm", force=False):
    """Make the local Debian base image (debootstrap + docker import); no registry needed."""
    with reported_errors():
        images.base_image(_project(c), _settings(), suite=suite, force=force)


@task(help=BUILDING)
def build(c, only=None, jobs=1, keep_going=False, dry_run=False, base_image=None, build_dir=None, cache_from=None,
          inline_cache=False):
    """Build and verify the selected images that are out of date."""
    with reported_errors():
        images.build(_project(c), _settings(base_image, build_dir), only, jobs=jobs, keep_going=keep_going,
                     dry_run=dry_run, cache_from=cache_from, inline_cache=inline_cache)


@task(help={k: v for k, v in BUILDING.items() if k != "only"})
def build_all(c, jobs=1, keep_going=False, dry_run=False, base_image=None, build_dir=None, cache_from=None,
              inline_cache=False):
    """Build and verify every out-of-date image; reports which entries cannot be built here and why."""
    with reported_errors():
        images.build(_project(c), _settings(base_image, build_dir), None, jobs=jobs, keep_going=keep_going,
                     dry_run=dry_run, everything=True, cache_from=cache_from, inline_cache=inline_cache)


@task(help={"only": ONLY, "build-dir": SELECTION["build-dir"]})
def sif(c, only=None, build_dir=None):
    """Convert built images to Apptainer SIF files (host apptainer, else a containerised one) and check them."""
    with reported_errors():
        images.sif(_project(c), _settings(None, build_dir), only)


@task(help={"build-dir": SELECTION["build-dir"],
            "matrix": "FAMILY[/VERSION] whose first two variants are built cold, warm and after an edit",
            "wrappers": "a tree made by cluster.wrappers: time its dispatcher and wrapper against apptainer exec",
            "command": "the command the wrapper measure runs with --version (default relion_refine)",
            "partition": "the Slurm partition the dispatcher picks the image for (default: outside a job)",
            "runtime": "run one small RELION 2D classification in every built RELION CPU image, in turns",
            "baseline": "with --runtime: the image the others are compared with (default: newest generic build)",
            "rounds": "with --runtime: how many times each image runs (default 2: A B A B)"})
def bench(c, build_dir=None, matrix=None, wrappers=None, command="relion_refine", partition=None, runtime=False,
          baseline=None, rounds=2):
    """Measure build, cache, size and runtime targets on this machine side by side; print them as ratios."""
    with reported_errors():
        images.bench(_project(c), _settings(None, build_dir), matrix=matrix, wrappers=wrappers, command=command,
                     partition=partition, runtime=runtime, baseline=baseline, rounds=rounds)


@task(help=dict(TREE, only=ONLY, **{"build-dir": SELECTION["build-dir"]}))
def publish(c, efs_root=None, only=None, group=None, file_mode="0444", dir_mode="0755", build_dir=None):
    """Publish verified SIF files to the EFS tree: versioned files, current.sif links, manifest.json."""
    with reported_errors():
        store.publish(_project(c), _settings(None, build_dir), efs_root, only,
                         group=group, file_mode=file_mode, dir_mode=dir_mode)


@task(help={"efs-root": TREE["efs-root"], "keep": "how many images to keep per variant, current included"})
def prune(c, efs_root=None, keep=3):
    """Remove old published SIFs, keeping the newest KEEP per variant (never the current one)."""
    with reported_errors():
        store.prune(efs_root, keep)


@task(help={
    "registry": "host[:port] of an OCI registry (with --ecr: an endpoint overriding the token's)",
    "ecr": "push to Amazon ECR (repositories created with immutable tags, scan on push, lifecycle)",
    "region": "AWS region for ECR (default: the standard AWS chain)",
    "profile": "AWS profile for ECR (default: the standard AWS chain)",
    "public": "the registry is public: images whose licence forbids redistribution are refused",
    "username": REGISTRY_USER,
    "only": ONLY,
    "build-dir": SELECTION["build-dir"],
})
def push(c, registry=None, ecr=False, region=None, profile=None, public=False, username=None, only=None,
         build_dir=None):
    """Push built images to ECR or any OCI registry; confirm the digests; record them for publish."""
    with reported_errors():
        store.push(_project(c), _settings(None, build_dir), registry, only, public=public,
                      username=username, ecr=ecr, region=region, profile=profile)


@task(help=dict(TREE, **{
    "efs-root": "the local tree to fill",
    "manifest": "path or http(s) URL of the other site's manifest.json",
    "only": ONLY,
    "registry": "pull OCI images by digest from this registry and make the SIF files here",
    "username": REGISTRY_USER,
    "allow-origin": "another origin (scheme://host[:port]) SIF downloads may be redirected to; repeatable",
    "timeout": "seconds one download may take (default 3600)",
}), iterable=["allow_origin"])
def pull(c, efs_root=None, manifest=None, only=None, registry=None, username=None, group=None,
         file_mode="0444", dir_mode="0755", allow_origin=None, timeout=None):
    """Fill a local EFS tree from another site's published images, verifying every digest and sha256."""
    with reported_errors():
        store.pull(efs_root, manifest, only, registry_url=registry, username=username, group=group,
                      file_mode=file_mode, dir_mode=dir_mode, root=c.config.cryostack.root,
                      allow_origins=allow_origin or (), timeout=timeout)


@task(help={"site": SITE, "output": "write the YAML here (default: print it)"})
def config(c, site=None, output=None):
    """Render the site's ParallelCluster v3 config and validate it offline with ParallelCluster's own checks."""
    with reported_errors():
        cluster.cluster_config(_project(c), site, output)


@task(help={"site": SITE, "manifest": "published manifest.json (default: the site's image store)",
            "prefix": "where bin/, qsub/ and modules/ go (default: the site's cluster_prefix)"})
def wrappers(c, site=None, manifest=None, prefix=None):
    """Generate per-partition wrappers and dispatchers, RELION qsub templates and module files."""
    with reported_errors():
        cluster.cluster_wrappers(_project(c), site, manifest, prefix)


def collection(root: Optional[str] = None) -> Collection:
    """Every task; ROOT is the checkout holding images/ and recipes/ (default: $CRYOSTACK_ROOT or .)."""
    namespace = Collection(render, matrix, lint, base_image, build, build_all, sif, bench, publish, prune, push,
                           pull, Collection("cluster", config, wrappers))
    namespace.configure({"cryostack": {"root": root}})
    return namespace


class CryostackProgram(Program):
    """The `cryostack` console script: the collection above, a --root flag, and exit code 2 for bad options."""

    def core_args(self) -> List[Argument]:
        return super().core_args() + [
            Argument(names=("root",), help="cryostack checkout holding images/ and recipes/ (default: .)"),
        ]

    def update_config(self, merge: bool = True) -> None:
        super().update_config(merge=False)
        if self.args.root.value:
            self.config.load_overrides({"cryostack": {"root": self.args.root.value}}, merge=False)
        if merge:
            self.config.merge()

    def parse_core(self, argv: Optional[List[str]]) -> None:
        self._refusing_bad_options(super().parse_core, argv)

    def parse_tasks(self) -> None:
        self._refusing_bad_options(super().parse_tasks)

    @staticmethod
    def _refusing_bad_options(step, *args) -> None:
        try:
            step(*args)
        except ParseError as exc:
            print(f"cryostack: error: {exc} (cryostack --help, or cryostack --help TASK)", file=sys.stderr)
            sys.exit(2)


program = CryostackProgram(name="cryostack", binary="cryostack", version=__version__, namespace=collection())

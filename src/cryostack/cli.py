"""The `cryostack` console script: the same commands as `invoke`, for machines without Invoke."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from . import __version__, commands
from .settings import BuildSettings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cryostack", description=__doc__)
    top.add_argument("--version", action="version", version=f"cryostack {__version__}")
    top.add_argument("--root", type=Path, help="cryostack checkout holding images/ and recipes/ (default: .)")
    sub = top.add_subparsers(dest="command", required=True)

    def with_selection(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--only", help="family[/version[/variant]] globs, comma-separated")
        command.add_argument("--base-image", help="Debian base image (default: local/debian:bookworm)")
        command.add_argument("--build-dir", help="where rendered recipes go (default: build)")
        return command

    def with_tree_modes(command: argparse.ArgumentParser) -> None:
        command.add_argument("--group", help="group of the published files (default: yours)")
        command.add_argument("--file-mode", default="0444")
        command.add_argument("--dir-mode", default="0755")

    with_selection("render", "render Dockerfile, Apptainer definition and build script per matrix entry")
    with_selection("matrix", "print the build matrix").add_argument("--json", action="store_true")
    with_selection("lint", "render, then hadolint and check every rendered file")
    for name, help_text in (("build", "build and verify the selected out-of-date images"),
                            ("build-all", "build and verify every out-of-date image")):
        command = with_selection(name, help_text)
        command.add_argument("--jobs", type=int, default=1, help="images built at once")
        command.add_argument("--keep-going", action="store_true", help="build the others when one fails")
        command.add_argument("--dry-run", action="store_true", help="say what would be built and why")
    with_selection("sif", "convert built images to Apptainer SIF files and smoke-test them")
    publish = with_selection("publish", "publish verified SIF files to the EFS tree with a manifest")
    publish.add_argument("--efs-root", required=True)
    with_tree_modes(publish)
    push = with_selection("push", "push built images to ECR or an OCI registry")
    push.add_argument("--registry")
    push.add_argument("--ecr", action="store_true")
    push.add_argument("--region")
    push.add_argument("--profile")
    push.add_argument("--public", action="store_true")
    push.add_argument("--username", help="the password is read from $CRYOSTACK_REGISTRY_PASSWORD")
    pull = sub.add_parser("pull", help="fill a local EFS tree from another site's published manifest")
    pull.add_argument("--efs-root", required=True, help="the local tree to fill")
    pull.add_argument("--manifest", required=True, help="path or http(s) URL of the other site's manifest.json")
    pull.add_argument("--only", help="family[/version[/variant]] globs, comma-separated")
    pull.add_argument("--registry", help="pull OCI images by digest from this registry and make the SIFs here")
    pull.add_argument("--username", help="registry user; the password is read from $CRYOSTACK_REGISTRY_PASSWORD")
    pull.add_argument("--allow-origin", action="append", default=[], metavar="SCHEME://HOST[:PORT]",
                      help="another origin SIF downloads may be redirected to (default: the manifest's own only)")
    pull.add_argument("--timeout", type=float, help="seconds one download may take (default 3600)")
    with_tree_modes(pull)
    config = sub.add_parser("cluster-config", help="render and validate the site's ParallelCluster config")
    config.add_argument("--site")
    config.add_argument("--output")
    wrappers = sub.add_parser("cluster-wrappers", help="generate wrappers, qsub templates and module files")
    wrappers.add_argument("--site")
    wrappers.add_argument("--manifest")
    wrappers.add_argument("--prefix")
    prune = sub.add_parser("prune", help="remove old published SIFs beyond the newest KEEP per variant")
    prune.add_argument("--efs-root", required=True)
    prune.add_argument("--keep", type=int, default=3)
    base = sub.add_parser("base-image", help="make the local Debian base image with debootstrap")
    base.add_argument("--suite", default="bookworm")
    base.add_argument("--force", action="store_true")
    return top


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    with commands.reported_errors():
        if args.command == "prune":  # needs no checkout: it works on the EFS tree alone
            return commands.prune(args.efs_root, args.keep)
        if args.command == "pull":  # likewise: what it needs is in the other site's manifest
            return commands.pull(args.efs_root, args.manifest, args.only, registry_url=args.registry,
                                 username=args.username, group=args.group, file_mode=args.file_mode,
                                 dir_mode=args.dir_mode, root=args.root, allow_origins=args.allow_origin,
                                 timeout=args.timeout)
        project = commands.Project.locate(args.root)
        if args.command == "cluster-config":
            return commands.cluster_config(project, args.site, args.output)
        if args.command == "cluster-wrappers":
            return commands.cluster_wrappers(project, args.site, args.manifest, args.prefix)
        settings = BuildSettings.from_env(base_image=getattr(args, "base_image", None),
                                          build_dir=getattr(args, "build_dir", None))
        if args.command == "base-image":
            commands.base_image(project, settings, suite=args.suite, force=args.force)
        elif args.command in ("build", "build-all"):
            commands.build(project, settings, args.only if args.command == "build" else None, jobs=args.jobs,
                           keep_going=args.keep_going, dry_run=args.dry_run, everything=args.command == "build-all")
        elif args.command == "publish":
            commands.publish(project, settings, args.efs_root, args.only, group=args.group,
                             file_mode=args.file_mode, dir_mode=args.dir_mode)
        elif args.command == "push":
            commands.push(project, settings, args.registry, args.only, public=args.public, username=args.username,
                          ecr=args.ecr, region=args.region, profile=args.profile)
        elif args.command == "sif":
            commands.sif(project, settings, args.only)
        elif args.command == "render":
            commands.render(project, settings, args.only)
        elif args.command == "matrix":
            commands.matrix(project, settings, args.only, as_json=args.json)
        elif args.command == "lint":
            commands.lint(project, settings, args.only)


if __name__ == "__main__":
    main()

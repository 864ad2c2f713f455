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

    with_selection("render", "render Dockerfile, Apptainer definition and build script per matrix entry")
    with_selection("matrix", "print the build matrix").add_argument("--json", action="store_true")
    with_selection("lint", "render, then hadolint and check every rendered file")
    return top


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    with commands.reported_errors():
        project = commands.Project.locate(args.root)
        settings = BuildSettings.from_env(base_image=args.base_image, build_dir=args.build_dir)
        if args.command == "render":
            commands.render(project, settings, args.only)
        elif args.command == "matrix":
            commands.matrix(project, settings, args.only, as_json=args.json)
        elif args.command == "lint":
            commands.lint(project, settings, args.only)


if __name__ == "__main__":
    main()

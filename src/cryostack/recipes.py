"""Render a target's Dockerfile, Apptainer definition and build script from recipes/*.j2."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Dict

import jinja2

from .errors import InputError

# One layout per output file; each imports the family's recipe.j2, so Docker and Apptainer
# are rendered from the same model (not converted from each other).
OUTPUTS = {
    "Dockerfile": "common/Dockerfile.j2",
    "apptainer.def": "common/apptainer.def.j2",
    "build.sh": "common/build.sh.j2",
}


def environment(recipes_dir: Path) -> jinja2.Environment:
    """A strict Jinja2 environment: an undefined name is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(recipes_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["shquote"] = shell_quote
    return env


def render_files(env: jinja2.Environment, context: Dict[str, object]) -> Dict[str, str]:
    """Every output file for one target, as text."""
    recipe = context["recipe_template"]
    if not Path(env.loader.searchpath[0], str(recipe)).is_file():  # type: ignore[union-attr]
        raise InputError(f"{context['catalogue_file']}: recipe: {recipe} does not exist under recipes/")
    files = {}
    for name, template in OUTPUTS.items():
        try:
            files[name] = env.get_template(template).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"recipes/{exc.name}:{exc.lineno}: template syntax: {exc.message}") from None
        except (jinja2.UndefinedError, jinja2.TemplateError) as exc:
            raise InputError(f"{_template_location(exc)}: {exc} (rendering {context['key']})") from None
    return files


def shell_quote(value: object) -> str:
    """Single-quote a value for POSIX shells."""
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def _template_location(exc: BaseException) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{frame.filename}:{frame.lineno}"
    return "recipes"

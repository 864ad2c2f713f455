"""Render a target's Dockerfile, Apptainer definition and build script from recipes/*.j2."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Annotated, Dict, List, Tuple

import jinja2
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import InputError
from .values import AbsolutePath

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


# An image reference as `FROM` takes it (no digest tricks needed here: base images are settings).
ImageRef = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$", max_length=255)]
DebianPackage = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.+-]+$")]
Component = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z-]*$")]
EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class RecipeContract(BaseModel):
    """What a family's recipe.j2 declares, as data the plan, build and verify stages read
    (instead of reading it back out of rendered text or image labels)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: AbsolutePath
    build_image: ImageRef
    runtime_image: ImageRef
    build_packages: Tuple[DebianPackage, ...] = Field(min_length=1)
    runtime_packages: Tuple[DebianPackage, ...] = ()
    build_components: Tuple[Component, ...] = ()
    runtime_components: Tuple[Component, ...] = ()
    environment: Dict[EnvironmentName, str] = {}

    @property
    def base_images(self) -> List[str]:
        """The images the build starts FROM, without repeats."""
        return list(dict.fromkeys([self.build_image, self.runtime_image]))


def recipe_contract(env: jinja2.Environment, context: Dict[str, object]) -> RecipeContract:
    """Evaluate the family's recipe.j2 as a module and validate what it declares."""
    recipe = str(context["recipe_template"])
    try:
        module = env.get_template(recipe).make_module(context)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"recipes/{exc.name}:{exc.lineno}: template syntax: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise InputError(f"{_template_location(exc)}: {exc} (rendering {context['key']})") from None
    fields = {name: getattr(module, name) for name in RecipeContract.model_fields if hasattr(module, name)}
    try:
        return RecipeContract.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InputError(f"recipes/{recipe}: {where}: {error['msg']} (rendering {context['key']})") from None


def shell_quote(value: object) -> str:
    """Single-quote a value for POSIX shells."""
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def _template_location(exc: BaseException) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{frame.filename}:{frame.lineno}"
    return "recipes"

"""Render a target's Dockerfile, Apptainer definition and build script from recipes/*.j2."""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Annotated, Dict, List, Literal, Optional, Tuple

import jinja2
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import InputError
from .values import AbsolutePath, Line

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
    env.filters["one_line"] = one_line
    env.filters["dockerfile_quote"] = dockerfile_quote
    env.filters["shell_dquote"] = shell_dquote
    env.filters["definition_line"] = definition_line
    return env


def render_files(env: jinja2.Environment, context: Dict[str, object]) -> Dict[str, str]:
    """Every output file for one target, as text."""
    _require_recipe(env, context)
    files = {}
    outputs = dict(OUTPUTS, **({"cpu-guard.sh": "common/cpu-guard.sh.j2"} if "cpu_guard" in context else {}))
    for name, template in outputs.items():
        try:
            files[name] = env.get_template(template).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise InputError(f"recipes/{exc.name}:{exc.lineno}: template syntax: {exc.message}") from None
        except (jinja2.UndefinedError, jinja2.TemplateError) as exc:
            raise InputError(f"{_template_location(exc)}: {exc} (rendering {context['key']})") from None
    return files


def _require_recipe(env: jinja2.Environment, context: Dict[str, object]) -> None:
    """A missing recipe folder is the catalogue's error (its `recipe:` or `family:` line), not a template's."""
    recipe = context["recipe_template"]
    if not Path(env.loader.searchpath[0], str(recipe)).is_file():  # type: ignore[union-attr]
        from .yamlfile import load_yaml

        where = context["catalogue_file"]
        lines = load_yaml(Path(str(where)))[1]
        line, key = (lines[("recipe",)], "recipe") if ("recipe",) in lines else (lines.get(("family",), 1), "family")
        raise InputError(f"{where}:{line}: {key}: recipes/{recipe} does not exist (give a folder under recipes/)")


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
    # The MPI the programs are built with: the cluster's launcher follows it (label io.cryostack.mpi).
    mpi: Optional[Literal["openmpi", "intelmpi"]] = None
    # What the build image must give that the site's Debian cannot: said when it cannot be had.
    base_image_needs: Optional[Line] = None

    @property
    def base_images(self) -> List[str]:
        """The images the build starts FROM, without repeats."""
        return list(dict.fromkeys([self.build_image, self.runtime_image]))


def recipe_contract(env: jinja2.Environment, context: Dict[str, object]) -> RecipeContract:
    """Evaluate the family's recipe.j2 as a module and validate what it declares."""
    recipe = str(context["recipe_template"])
    _require_recipe(env, context)
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


# Characters that end or bend a line in some reader: C0/C1 controls, DEL, the Unicode line and
# paragraph separators, and the bidirectional controls. No output language has an escape that
# keeps them inert everywhere, so a value holding one is refused, not rendered.
_LINE_BREAKING = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A reference to a variable ($PATH, ${PATH}): the only expansion a recipe's environment values use.
_VARIABLE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})")


def one_line(value: object) -> str:
    """VALUE unchanged when it stays on one line in any reader; a template error otherwise.
    For comments and other places whose only danger is a new line."""
    text = str(value)
    bad = _LINE_BREAKING.search(text)
    if bad:
        raise jinja2.TemplateRuntimeError(
            f"{text[:60]!r} cannot be rendered on one line: it contains U+{ord(bad.group()):04X}")
    return text


def dockerfile_quote(value: object, variables: bool = False) -> str:
    """VALUE as one double-quoted Dockerfile word (ENV, LABEL): backslash, quote and $ escaped,
    so the builder takes it literally. With variables=True, $NAME and ${NAME} still expand (a
    recipe's PATH=/opt/x/bin:$PATH); every other $ is literal."""
    return '"' + _escape_dollars(one_line(value).replace("\\", "\\\\").replace('"', '\\"'), variables) + '"'


def shell_dquote(value: object) -> str:
    """VALUE as a double-quoted POSIX shell word in which only $NAME and ${NAME} expand: no command
    substitution, no backquotes, no arithmetic. For %environment, where recipes extend $PATH."""
    escaped = re.sub(r'([\\"`])', r"\\\1", one_line(value))
    return '"' + _escape_dollars(escaped, variables=True) + '"'


def definition_line(value: object) -> str:
    """VALUE for a line of an Apptainer definition file. Apptainer opens a new section at any line
    whose first word starts with '%', and a new stage at a line starting with 'Bootstrap:'; a
    value on one line that does not itself start with '%' can do neither."""
    text = one_line(value)
    if text.lstrip().startswith("%"):
        raise jinja2.TemplateRuntimeError(f"{text[:60]!r} would open a definition-file section (it starts with '%')")
    return text


def _escape_dollars(text: str, variables: bool) -> str:
    kept = [m.span() for m in _VARIABLE.finditer(text)] if variables else []
    out, position = [], 0
    for start, end in kept + [(len(text), len(text))]:
        out.append(text[position:start].replace("$", "\\$"))
        out.append(text[start:end])
        position = end
    return "".join(out)


def _template_location(exc: BaseException) -> str:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{frame.filename}:{frame.lineno}"
    return "recipes"

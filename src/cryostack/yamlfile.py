"""YAML files validated by a pydantic model, with errors that name file, line and key."""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Dict, Iterable, Literal, Tuple, Type, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import InputError

Loc = Tuple[Any, ...]
Model = TypeVar("Model", bound=BaseModel)


def load_model(path: Path, model: Type[Model]) -> Tuple[Model, Dict[Loc, int]]:
    """Parse PATH and validate it as MODEL; InputError (one line) on the first problem.
    Also returns the line of every key path, for checks made after validation."""
    path = shown(Path(path))
    data, lines = _parse(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: the file must be a mapping of keys ({', '.join(model.model_fields)})")
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        # An unknown key is usually a typo that also makes a required key "missing": name it first.
        first = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        raise InputError(_describe(path, first, lines, model)) from None


def shown(path: Path) -> Path:
    """PATH relative to the current directory when it lies below it: shorter messages."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _parse(path: Path) -> Tuple[Any, Dict[Loc, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError(f"{path}:1: the file is empty")
        lines: Dict[Loc, int] = {}
        _record_lines(path, node, (), lines)
        return loader.construct_document(node), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}:{line}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()


def _record_lines(path: Path, node: yaml.Node, loc: Loc, lines: Dict[Loc, int]) -> None:
    """Map every key path to its line, refusing duplicate keys (PyYAML keeps the last silently)."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise InputError(f"{path}:{key_node.start_mark.line + 1}: {_path(loc + (key,))}: duplicate key")
            seen.add(key)
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _record_lines(path, value_node, loc + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(path, item, loc + (index,), lines)


def _describe(path: Path, error: dict, lines: Dict[Loc, int], model: type) -> str:
    tagged = tuple(str(part) if not isinstance(part, int) else part for part in error["loc"])
    kind = error["type"]
    loc = _without_union_tags(tagged, lines, keep_last=kind == "missing")
    if kind == "missing":
        where, detail = loc[:-1], f"missing required key {loc[-1]!r}"
    elif kind == "extra_forbidden":
        valid = sorted(_model_at(model, tagged[:-1]).model_fields)
        guess = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        where, detail = loc, f"unknown key {loc[-1]!r} ({hint}valid keys: {', '.join(valid)})"
    else:
        message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
        where = loc
        if kind == "value_error" or isinstance(error.get("input"), (dict, list)):
            detail = message
        else:
            detail = f"{message} (got {error.get('input')!r})"
    line = _nearest_line(where, lines)
    key = _path(where) or "(top level)"
    return f"{path}:{line}: {key}: {detail}"


def _without_union_tags(loc: Loc, lines: Dict[Loc, int], keep_last: bool) -> Loc:
    """LOC without the tags pydantic adds for a discriminated union (e.g. `check.reconstruction.box`
    for the file's `check.box`): a part that is no key of the file, under a mapping that is."""
    kept: Loc = ()
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(part, str) and kept in lines and kept + (part,) not in lines and not (last and keep_last):
            continue
        kept += (part,)
    return kept


def _nearest_line(loc: Loc, lines: Dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _path(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _model_at(model: Any, loc: Loc) -> type:
    """The pydantic model that validates the mapping at `loc` (for listing its valid keys)."""
    for part in loc:  # dict keys and list indices name no field: they keep the element's model
        if isinstance(model, tuple):  # a discriminated union: the tag in `loc` names the member
            model = next((m for m in model if part in _tags(m)), model[-1])
        elif part in model.model_fields:
            model = _unwrap(model.model_fields[part].annotation)
    return model[-1] if isinstance(model, tuple) else model


def _tags(model: Any) -> tuple:
    """The values of a union member's Literal fields (its discriminator tag among them)."""
    return tuple(arg for field in model.model_fields.values() if typing.get_origin(field.annotation) is Literal
                 for arg in typing.get_args(field.annotation))


def _unwrap(annotation: Any) -> Any:
    """Optional[X], List[X], Dict[str, X] -> X; a union of models -> the tuple of its members."""
    while typing.get_origin(annotation) is not None:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) > 1 and all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
            return tuple(args)
        annotation = args[-1]
    return annotation

"""YAML files validated by a pydantic model, with errors that name file, line and key.

Loading is bounded, because catalogue and site files arrive through pull requests and from
other sites: the size, nesting depth, number of aliases and the size after expanding aliases
are capped (an alias bomb is refused at once instead of expanding for minutes), and control
characters, invalid UTF-8, oversized integers, non-text keys and duplicate keys are refused
with the line they are on.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Dict, Iterable, Literal, Tuple, Type, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import InputError
from .values import BIDI_CONTROLS, MEANINGS

Loc = Tuple[Any, ...]
Model = TypeVar("Model", bound=BaseModel)

MAX_BYTES = 4 << 20       # the largest catalogue file is a few KB
MAX_DEPTH = 32            # nested mappings/lists; the models need 5
MAX_ALIASES = 100
MAX_VALUES = 100_000      # scalars and collections after expanding aliases
MAX_INT_DIGITS = 20       # beyond any count, size or id the models hold
SHOWN = 60                # characters of a value or key quoted in a message

_STR = "tag:yaml.org,2002:str"
_KEY_KINDS = {"int": "a number", "float": "a number", "bool": "true/false", "null": "null", "timestamp": "a date"}
_INT = "tag:yaml.org,2002:int"


def load_model(path: Path, model: Type[Model]) -> Tuple[Model, Dict[Loc, int]]:
    """Parse PATH and validate it as MODEL; InputError (one line) on the first problem.
    Also returns the line of every key path, for checks made after validation."""
    path = shown(Path(path))
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: the file must be a mapping of keys ({', '.join(model.model_fields)})")
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise InputError(describe(path, exc, lines, model)) from None


def shown(path: Path) -> Path:
    """PATH relative to the current directory when it lies below it: shorter messages."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def load_yaml(path: Path) -> Tuple[Any, Dict[Loc, int]]:
    """The data of one YAML document, bounded as the module says, and the line of every key path."""
    text = decode(read_bounded(path, MAX_BYTES), str(path))
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError(f"{path}:1: the file is empty")
        lines: Dict[Loc, int] = {}
        _Walk(str(path), lines).node(node, ())
        return loader.construct_document(node), lines
    except _Refused as exc:
        raise InputError(f"{path}:{exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}:{line}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()


def read_bounded(path: Path, limit: int) -> bytes:
    """At most LIMIT bytes of PATH; a larger file is refused rather than read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit >> 20} MiB; refusing to read it")
    return data


def decode(data: bytes, where: str) -> str:
    """DATA as UTF-8 text with no control characters outside tab and newline; the line of the
    first offending byte or character is named."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{where}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None
    match = _RAW_CONTROL.search(text)
    if match:
        line = text.count("\n", 0, match.start()) + 1
        raise InputError(f"{where}:{line}: {character_problem(match.group())}")
    return text


def character_problem(char: str) -> str:
    if char in BIDI_CONTROLS:
        return f"contains the bidirectional control U+{ord(char):04X}, which makes text display differently from what it is"
    return f"contains the control character U+{ord(char):04X}; only printable text, tabs and newlines are allowed"


# Raw text: C0 controls other than tab, newline and carriage return, DEL, C1 controls, the Unicode
# line and paragraph separators (PyYAML counts them as line breaks, editors do not) and bidi controls.
_RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(BIDI_CONTROLS)) + "]")
# A value after escapes ("\e", "\x00" in double quotes) are resolved: the same, less carriage return.
_VALUE_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(BIDI_CONTROLS)) + "]")


class _Refused(yaml.MarkedYAMLError):
    """A document this loader will not expand or construct (its problem names why)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that caps nesting depth and alias count while composing, and refuses aliases
    to a collection from inside that collection (a recursive structure)."""

    def __init__(self, text: str):
        super().__init__(text)
        self._depth, self._aliases, self._open = 0, 0, []

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(problem=f"more than {MAX_ALIASES} aliases; write the values out", problem_mark=event.start_mark)
            if event.anchor in self._open:
                raise _Refused(problem=f"alias *{event.anchor} refers to a collection that contains it (a recursive structure)",
                               problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        self._open.append(getattr(event, "anchor", None))
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()
            self._depth -= 1


class _Walk:
    """One pass over the composed nodes, aliases expanded: records the line of every key path and
    refuses what the models must never see, before anything is constructed."""

    def __init__(self, where: str, lines: Dict[Loc, int]):
        self.where, self.lines, self.count = where, lines, 0

    def refuse(self, node: yaml.Node, loc: Loc, problem: str, line: int = 0) -> None:
        key = f"{key_path(loc)}: " if loc else ""
        raise InputError(f"{self.where}:{line or node.start_mark.line + 1}: {key}{problem}")

    def node(self, node: yaml.Node, loc: Loc) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            # The node at hand is deep inside some alias: name the top-level key it hangs from.
            self.refuse(node, loc[:1], f"expands to more than {MAX_VALUES} values through aliases; write it out plainly",
                        line=self.lines.get(loc[:1], 0))
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                key = self.key(key_node, loc)
                if key in seen:
                    self.refuse(key_node, loc + (key,), "duplicate key")
                seen.add(key)
                self.lines[loc + (key,)] = key_node.start_mark.line + 1
                self.node(value_node, loc + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.node(item, loc + (index,))
        else:
            self.scalar(node, loc)

    def key(self, node: yaml.Node, loc: Loc) -> str:
        if node.tag == "tag:yaml.org,2002:merge":
            self.refuse(node, loc, "merge keys (<<) are not supported; write the keys out")
        if not isinstance(node, yaml.ScalarNode):
            self.refuse(node, loc, "a key must be text, not a list or mapping")
        self.scalar(node, loc)
        if node.tag != _STR:
            kind = _KEY_KINDS.get(node.tag.rsplit(":", 1)[-1], "something other than text")
            self.refuse(node, loc + (node.value,), f"the key {shorten(node.value)} is read as {kind}; "
                        f"keys must be text: quote it (\"{shorten(node.value, quote=False)}\")")
        return node.value

    def scalar(self, node: yaml.ScalarNode, loc: Loc) -> None:
        bad = _VALUE_CONTROL.search(node.value)
        if bad:
            self.refuse(node, loc, character_problem(bad.group()))
        if node.tag == _INT and len(node.value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
            self.refuse(node, loc, f"an integer of {len(node.value)} digits is too large (at most {MAX_INT_DIGITS})")


def shorten(value: object, quote: bool = True) -> str:
    """VALUE for a one-line message: repr'd (so control characters show escaped) and cut short."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def describe(where: object, exc: ValidationError, lines: Dict[Loc, int], model: type) -> str:
    """One line for the first problem pydantic found: where:line: key: what is wrong.
    An unknown key is usually a typo that also makes a required key "missing": it is named first."""
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    tagged = tuple(str(part) if not isinstance(part, int) else part for part in error["loc"])
    kind = error["type"]
    loc = _without_union_tags(tagged, lines, keep_last=kind == "missing")
    subject = ""
    if loc and loc[-1] == "[key]":  # pydantic's marker for a mapping key that failed its type
        loc, subject = loc[:-1], "the key "
    meaning = MEANINGS.get((error.get("ctx") or {}).get("pattern"))
    if kind == "missing":
        at, detail = loc[:-1], f"missing required key {loc[-1]!r}"
    elif kind == "extra_forbidden":
        valid = sorted(_model_at(model, tagged[:-1]).model_fields)
        guess = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        at, detail = loc, f"unknown key {shorten(loc[-1])} ({hint}valid keys: {', '.join(valid)})"
    else:
        message = meaning or re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
        message = subject + message
        at = loc
        if kind == "value_error" or isinstance(error.get("input"), (dict, list)):
            detail = message
        else:
            detail = f"{message} (got {shorten(error.get('input'))})"
    line = f":{nearest_line(at, lines)}" if lines else ""
    return f"{where}{line}: {key_path(at) or '(top level)'}: {' '.join(detail.split())}"


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


def nearest_line(loc: Loc, lines: Dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def key_path(loc: Iterable[Any]) -> str:
    """A key path as the user would write it: versions['5.0.1'].source.sha256, commands[3]."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", part):
            text += f".{part}" if text else part
        else:
            text += f"[{shorten(part)}]"
    return text if len(text) <= 2 * SHOWN else text[: 2 * SHOWN - 3] + "..."


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
    """Optional[X], List[X], Dict[str, X], Annotated[X, ...] -> X; a union of models -> the tuple of its members."""
    while typing.get_origin(annotation) is not None:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) > 1 and all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
            return tuple(args)
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        annotation = models[0] if models else args[-1]
    return annotation

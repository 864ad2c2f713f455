"""JSON documents from elsewhere (another site's manifest), parsed with bounds and line numbers.

The standard library's parser keeps the last of duplicate keys, turns a 5000-digit number into
an error only at a fixed limit, recurses without a depth bound and reports no line for a key
that fails validation later. This small parser does the same job with those bounds, and records
the line of every key path as yamlfile does, so a manifest's problems read `file:line: key: ...`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Tuple

from .errors import InputError
from .yamlfile import Loc, character_problem, decode, key_path

MAX_DEPTH = 32
MAX_INT_DIGITS = 20
MAX_VALUES = 1_000_000

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?P<fraction>(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?))
  | (?P<literal>true|false|null)
  | (?P<punct>[][{}:,])
""", re.VERBOSE)
_LITERALS = {"true": True, "false": False, "null": None}
# Decoded strings: the raw text was checked by decode(); escapes (\u0000, \u001b, \u202e) were not.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def load_json(data: bytes, where: str) -> Tuple[Any, Dict[Loc, int]]:
    """The value in DATA and the line of every key path; InputError naming where:line otherwise."""
    return _Parser(decode(data, where), where).document()


class _Parser:
    def __init__(self, text: str, where: str):
        self.where, self.tokens = where, self._tokens(text, where)
        self.index, self.count, self.lines = 0, 0, {}

    @staticmethod
    def _tokens(text: str, where: str) -> List[Tuple[str, str, int]]:
        tokens, position, line = [], 0, 1
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match:
                char = text[position]
                problem = f"unexpected {char!r}" if char.isprintable() else character_problem(char)
                raise InputError(f"{where}:{line}: not valid JSON: {problem}")
            kind = match.lastgroup if match.lastgroup != "fraction" else "number"
            if kind != "space":
                tokens.append((kind, match.group(), line))
            line += match.group().count("\n")
            position = match.end()
        tokens.append(("end", "", line))
        return tokens

    def fail(self, line: int, loc: Loc, problem: str) -> None:
        key = f"{key_path(loc)}: " if loc else ""
        raise InputError(f"{self.where}:{line}: {key}{problem}")

    def next(self) -> Tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str, loc: Loc) -> None:
        kind, value, line = self.next()
        if value != text or kind == "string":
            self.fail(line, loc, f"not valid JSON: expected {text!r}, found {value or 'the end'!r}")

    def document(self) -> Tuple[Any, Dict[Loc, int]]:
        value = self.value((), 1)
        kind, text, line = self.next()
        if kind != "end":
            self.fail(line, (), f"not valid JSON: more after the document ({text!r})")
        return value, self.lines

    def value(self, loc: Loc, depth: int) -> Any:
        kind, text, line = self.next()
        self.count += 1
        if self.count > MAX_VALUES:
            self.fail(line, loc, f"more than {MAX_VALUES} values; refusing it")
        self.lines.setdefault(loc, line)
        if text in ("{", "[") and kind == "punct":
            if depth > MAX_DEPTH:
                self.fail(line, loc, f"nested more than {MAX_DEPTH} levels deep")
            return self.mapping(loc, depth) if text == "{" else self.sequence(loc, depth)
        if kind == "string":
            return self.string(text, line, loc)
        if kind == "number":
            return self.number(text, line, loc)
        if kind == "literal":
            return _LITERALS[text]
        self.fail(line, loc, f"not valid JSON: expected a value, found {text or 'the end'!r}")

    def mapping(self, loc: Loc, depth: int) -> Dict[str, Any]:
        result: Dict[str, Any] = {}
        if self.tokens[self.index][1] == "}":
            self.index += 1
            return result
        while True:
            kind, text, line = self.next()
            if kind != "string":
                self.fail(line, loc, f"not valid JSON: expected a key in quotes, found {text or 'the end'!r}")
            key = self.string(text, line, loc)
            if key in result:
                self.fail(line, loc + (key,), "duplicate key")
            self.lines[loc + (key,)] = line
            self.expect(":", loc + (key,))
            result[key] = self.value(loc + (key,), depth + 1)
            kind, text, line = self.next()
            if text == "}":
                return result
            if text != ",":
                self.fail(line, loc, f"not valid JSON: expected ',' or '}}', found {text or 'the end'!r}")

    def sequence(self, loc: Loc, depth: int) -> List[Any]:
        result: List[Any] = []
        if self.tokens[self.index][1] == "]":
            self.index += 1
            return result
        while True:
            result.append(self.value(loc + (len(result),), depth + 1))
            kind, text, line = self.next()
            if text == "]":
                return result
            if text != ",":
                self.fail(line, loc, f"not valid JSON: expected ',' or ']', found {text or 'the end'!r}")

    def string(self, token: str, line: int, loc: Loc) -> str:
        value = json.loads(token)
        bad = _CONTROL.search(value)
        if bad:
            self.fail(line, loc, character_problem(bad.group()) if not 0xD800 <= ord(bad.group()) <= 0xDFFF
                      else f"contains the lone surrogate U+{ord(bad.group()):04X}")
        return value

    def number(self, token: str, line: int, loc: Loc) -> Any:
        integer = not any(c in token for c in ".eE")
        if integer:
            if len(token.lstrip("-")) > MAX_INT_DIGITS:
                self.fail(line, loc, f"a number of {len(token.lstrip('-'))} digits is too large (at most {MAX_INT_DIGITS})")
            return int(token)
        value = float(token)
        if not math.isfinite(value):
            self.fail(line, loc, f"the number {token[:20]} is out of range")
        return value

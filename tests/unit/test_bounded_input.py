"""Hostile YAML and JSON: every case is refused fast, with exit code 2 and one line naming file:line."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from cryostack.errors import InputError
from cryostack.jsonfile import load_json
from cryostack.yamlfile import load_yaml
from helpers import ROOT, cryostack

RELION = (ROOT / "images" / "relion.yaml").read_text()


def _bomb(levels: int, width: int) -> str:
    """The billion-laughs document: each level is WIDTH aliases of the one before."""
    text = "lol0: &lol0 [" + ", ".join(["lol"] * width) + "]\n"
    for level in range(1, levels + 1):
        text += f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * width) + "]\n"
    return text


# (case, YAML text, line the message must name, fragment of the message)
HOSTILE_YAML = [
    ("billion laughs", _bomb(9, 10), None, "expands to more than"),
    ("too many aliases", "a: &a x\nb: [" + ", ".join(["*a"] * 150) + "]\n", 2, "more than 100 aliases"),
    ("recursive alias", "a: 1\nb: &b [1, *b]\n", 2, "refers to a collection that contains it"),
    ("recursive mapping", "a: &a\n  b: *a\n", 2, "refers to a collection that contains it"),
    ("deep nesting", "a: 1\nb: " + "[" * 3000 + "]" * 3000 + "\n", 2, "nested more than"),
    ("raw NUL", "a: 1\nb: x\0y\n", 2, "U+0000"),
    ("escaped NUL", 'a: 1\nb: "x\\0y"\n', 2, "b: contains the control character U+0000"),
    ("escaped ESC", 'a:\n  b: "\\e[31mred"\n', 2, "a.b: contains the control character U+001B"),
    ("raw DEL", "a: 1\n\nb: x\x7f\n", 3, "U+007F"),
    ("C1 control", "a: x\u009b31m\n", 1, "U+009B"),
    ("bidi override", "a: 1\nb: admin\u202e\n", 2, "bidirectional control U+202E"),
    ("escaped bidi", 'a: 1\nb: "\\u2066x"\n', 2, "b: contains the bidirectional control U+2066"),
    ("line separator", "a: 1\nb: x\u2028y\n", 2, "U+2028"),
    ("5000-digit integer", "a: 1\nb: " + "7" * 5000 + "\n", 2, "b: an integer of 5000 digits is too large"),
    ("number key", "versions:\n  '1.0': {}\n  5.0: {}\n", 3, "versions['5.0']: the key '5.0' is read as a number"),
    ("boolean key", "on: 1\n", 1, "the key 'on' is read as true/false; keys must be text"),
    ("list as key", "? [a, b]\n: 1\n", 1, "a key must be text"),
    ("merge key", "a: &a {x: 1}\nb:\n  <<: *a\n", 3, "merge keys (<<) are not supported"),
    ("duplicate key", "a: 1\nb: 2\na: 3\n", 3, "a: duplicate key"),
]


@pytest.mark.parametrize("case, text, line, fragment", HOSTILE_YAML, ids=[c[0] for c in HOSTILE_YAML])
def test_hostile_yaml_is_refused_fast_naming_its_line(tmp_path: Path, case, text, line, fragment):
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(InputError) as caught:
        load_yaml(path)
    assert time.monotonic() - started < 3, "refusing must not expand the document"
    message = str(caught.value)
    assert "\n" not in message and fragment in message, message
    reported = int(re.match(rf"{re.escape(str(path))}:(\d+): ", message).group(1))
    assert reported == line if line else 1 <= reported <= text.count("\n")


def test_invalid_utf8_names_the_line_of_the_byte(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nb: 2\nlicence: Gr\xfcn\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}:3: not UTF-8 text \(byte 0xfc\)"):
        load_yaml(path)


def test_an_oversized_file_is_refused_unread(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    path.write_text("a: " + "x" * (5 << 20) + "\n")
    with pytest.raises(InputError, match="larger than 4 MiB"):
        load_yaml(path)


def test_plain_anchors_and_aliases_still_work(tmp_path: Path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b [c6i, c5]\nother: *b\n")
    data, lines = load_yaml(path)
    assert data == {"base": ["c6i", "c5"], "other": ["c6i", "c5"]} and lines[("other",)] == 2


@pytest.mark.parametrize("case, text, fragment", [
    ("billion laughs", _bomb(9, 10), "expands to more than"),
    ("5000-digit integer", RELION.replace("cuda_arch: 86", "cuda_arch: " + "8" * 5000), "5000 digits is too large"),
    ("deep nesting", RELION.replace("description: NVIDIA A10G (g5)", "description: " + "[" * 500 + "]" * 500), "nested more than"),
    ("recursive alias", RELION.replace("description: NVIDIA A10G (g5)", "description: &t [g5, *t]"), "contains it"),
    ("mixed key types", RELION.replace('"5.0.1":', "5.0:"), "the key '5.0' is read as a number"),
    ("NUL", re.sub(r"(?m)^description: .*$", lambda _: 'description: "RELION\\0"', RELION), "description: contains the control character U+0000"),
    ("ESC", RELION.replace("GPL-2.0-only", '"GPL\\e[2J"'), "licence.name: contains the control character U+001B"),
    ("trailing newline", re.sub(r"sha256: (acbf[0-9a-f]+)", lambda m: f'sha256: "{m.group(1)}\\n"', RELION),
     "is not 64 lower-case hex digits"),
])
def test_cli_refuses_hostile_catalogue_files_with_exit_2(project: Path, case, text, fragment):
    path = project / "images" / "relion.yaml"
    path.write_text(text)
    started = time.monotonic()
    result = cryostack("--root", str(project), "render", "--build-dir", str(project / "out"))
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "internal error" not in result.stderr
    assert re.search(rf"relion\.yaml:\d+: .*{re.escape(fragment)}", result.stderr), result.stderr
    assert not (project / "out").exists()


def test_invalid_utf8_in_the_catalogue_is_exit_2_with_its_line(project: Path):
    path = project / "images" / "relion.yaml"
    path.write_bytes(RELION.encode().replace(b"GPL-2.0-only", b"GPL-2.0-\xff"))
    result = cryostack("--root", str(project), "render", "--build-dir", str(project / "out"))
    line = RELION[: RELION.index("GPL-2.0-only")].count("\n") + 1
    assert result.returncode == 2 and f"relion.yaml:{line}: not UTF-8 text" in result.stderr, result.stderr


# JSON: another site's manifest.
HOSTILE_JSON = [
    ("duplicate key", '{"images": {},\n "images": {}}', 2, "images: duplicate key"),
    ("deep nesting", '{"a":\n' + "[" * 5000 + "]" * 5000 + "}", 2, "nested more than"),
    ("5000-digit number", '{"size":\n' + "9" * 5000 + "}", 2, "size: a number of 5000 digits is too large"),
    ("escaped NUL", '{"a": 1,\n "path": "x\\u0000"}', 2, "path: contains the control character U+0000"),
    ("escaped bidi", '{"name": "\\u202e"}', 1, "bidirectional control U+202E"),
    ("raw ESC", '{"a":\n "\x1b[2J"}', 2, "U+001B"),
    ("lone surrogate", '{"a": "\\udc00"}', 1, "lone surrogate"),
    ("NaN", '{"a": NaN}', 1, "not valid JSON"),
    ("infinity", '{"a": 1e400}', 1, "out of range"),
    ("trailing garbage", '{}\n{}', 2, "more after the document"),
    ("truncated", '{"images": {"a": ', 1, "expected a value"),
]


@pytest.mark.parametrize("case, text, line, fragment", HOSTILE_JSON, ids=[c[0] for c in HOSTILE_JSON])
def test_hostile_json_is_refused_naming_its_line(case, text, line, fragment):
    with pytest.raises(InputError) as caught:
        load_json(text.encode(), "site-b/manifest.json")
    message = str(caught.value)
    assert message.startswith(f"site-b/manifest.json:{line}: ") and fragment in message, message


def test_json_invalid_utf8_names_its_line():
    with pytest.raises(InputError, match=r"^m\.json:3: not UTF-8 text \(byte 0xc3\)"):
        load_json(b'{\n"a": 1,\n"b": "\xc3("}', "m.json")


def test_json_reads_what_the_standard_library_writes():
    document = {"schema_version": 1, "images": {"a/1/b": {"sif": {"size": 12, "sha256": "0" * 64},
                                                          "ratio": -1.5e-3, "ok": True, "none": None,
                                                          "text": "tab\tquote\" slash/ é ü 漢", "list": [[], {}]}}}
    for indent in (None, 2):
        data, lines = load_json(json.dumps(document, indent=indent, ensure_ascii=indent is None).encode(), "m")
        assert data == document
    assert lines[("images", "a/1/b", "sif", "size")] == 6

"""The precise types a value gets where it enters cryostack (catalogue, site file, manifest, CLI).

Every value that later becomes a path component, a file name, a shell word, a Lua or Tcl string,
a definition-file line or a YAML scalar is one of these. Validation here is the first of two
guards: the templates still escape each value for their own language.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# Bidirectional controls can make text display differently from what runs (CVE-2021-42574).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_LINE = 500


def printable_problem(value: str, multiline: bool = False) -> str | None:
    """Why VALUE is not printable text (control, bidi or unassigned characters), or None."""
    for char in value:
        if multiline and char == "\n":
            continue
        if char in BIDI_CONTROLS:
            return f"contains the bidirectional control U+{ord(char):04X}"
        category = unicodedata.category(char)
        if category in ("Zl", "Zp"):  # line breaks to Python's splitlines, JavaScript, some editors
            return f"contains the line separator U+{ord(char):04X}"
        if category in ("Cc", "Cs", "Co", "Cn") or (category == "Cf" and char != "\u200d"):
            return f"contains the control character U+{ord(char):04X}"
    return None


def _line(value: str) -> str:
    problem = printable_problem(value)
    if problem:
        raise ValueError(f"must be one line of printable text: it {problem}")
    return value


def _text(value: str) -> str:
    problem = printable_problem(value, multiline=True)
    if problem:
        raise ValueError(f"must be printable text: it {problem}")
    return value


# One line of printable text: descriptions, licence names, notes shown to people.
Line = Annotated[str, StringConstraints(max_length=MAX_LINE), AfterValidator(_line)]
# Printable text that may span lines (folded YAML notes); never rendered into scripts.
Text = Annotated[str, StringConstraints(max_length=8 * MAX_LINE), AfterValidator(_text)]

# A name that is safe as a file name, a path component and a shell word: family, version,
# variant, command and queue names. It never starts with '-' or '.', so it is never an option
# or a hidden/parent entry.
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER)]

SHA256 = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, StringConstraints(pattern=SHA256)]

_PATH_CHARS = re.compile(r"^[A-Za-z0-9._+@%=,:/-]+$")


def _components(value: str) -> list:
    if not _PATH_CHARS.fullmatch(value):
        raise ValueError("may hold only letters, digits and . _ + @ % = , : / -")
    parts = value.split("/")
    if any(part in (".", "..") for part in parts):
        raise ValueError("must not contain '.' or '..' components")
    return parts


def _absolute(value: str) -> str:
    parts = _components(value)
    if not value.startswith("/") or "" in parts[1:-1] or (len(parts) > 2 and parts[-1] == ""):
        raise ValueError("must be an absolute path such as /efs/cryostack (no '//', no trailing '/')")
    return value


def _relative(value: str) -> str:
    parts = _components(value)
    if value.startswith("/") or "" in parts or parts[0].startswith("-"):
        raise ValueError("must be a relative path inside its tree, such as images/relion/5.0.1/gcc-cpu/x.sif")
    return value


# An absolute path with no shell or Lua metacharacters and no way up: mounts, prefixes, binds.
AbsolutePath = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_absolute)]
# A path confined to the tree it is relative to: no leading '/', no '..'.
RelativePath = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_relative)]

_URL = re.compile(r"^(?P<scheme>https|s3)://(?P<host>[A-Za-z0-9.-]+(:[0-9]{1,5})?)(?P<path>/[A-Za-z0-9._~%+@=,:/-]*)?$")


def _url(value: str) -> str:
    if not _URL.fullmatch(value):
        raise ValueError("must be an https:// or s3:// URL of letters, digits and . _ ~ % + @ = , : / -")
    return value


# Where a node fetches a script from, or a bucket: https or s3 only, no query, no shell text.
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_url)]


_LOOPBACK_HTTP = re.compile(r"^http://(127\.[0-9.]+|localhost)(:[0-9]{1,5})?/")


def _https(value: str) -> str:
    if _LOOPBACK_HTTP.match(value):  # a mirror on this very machine, as Docker allows for registries
        _url("https://" + value[len("http://"):])
        return value
    _url(value)
    if not value.startswith("https://"):
        raise ValueError("must be an https:// URL (or http:// on the loopback address: a local mirror); "
                         "downloads are verified by sha256, but never fetched in clear from elsewhere")
    return value


# Where a source archive is downloaded from: https only, or plain http from a loopback mirror.
HttpsUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_https)]

# A plain file name (a source archive, an installer, a SIF): never a path, never an option.
FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$"
FileName = Annotated[str, StringConstraints(pattern=FILE_NAME)]

# An OCI content digest, the only kind cryostack pins images by.
OCI_DIGEST = r"^sha256:[0-9a-f]{64}$"
OciDigest = Annotated[str, StringConstraints(pattern=OCI_DIGEST)]
# An image reference (registry/repository:tag or @digest). It becomes an argument of docker or
# podman, so it never starts with '-' and holds no shell text.
IMAGE_REFERENCE = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$"
ImageReference = Annotated[str, StringConstraints(max_length=512, pattern=IMAGE_REFERENCE)]

# What each pattern above means, for error messages (pydantic would quote the regular expression).
MEANINGS = {
    IDENTIFIER: "must be a name of letters, digits and . _ + - (not starting with '.' or '-', at most 64 characters)",
    FILE_NAME: "must be a plain file name of letters, digits and . _ + - (no '/', not starting with '.' or '-')",
    SHA256: "must be 64 lower-case hex digits",
    OCI_DIGEST: "must be an OCI digest: sha256: and 64 lower-case hex digits",
    IMAGE_REFERENCE: "must be an image reference such as registry/repository:tag (letters, digits and . _ : / @ -, "
                     "not starting with '-')",
}


def confined(root: PurePosixPath | str, relpath: str) -> PurePosixPath:
    """ROOT/RELPATH, refusing a RELPATH that would leave ROOT (checked lexically; callers that touch
    the file system also check after resolving links)."""
    _relative(relpath)
    return PurePosixPath(root) / relpath


def version_order(version: str) -> tuple:
    """A sort key for version strings: numeric parts as numbers (4.0.10 after 4.0.9), and a part with
    letters (a tag such as beta) before any number at its place."""
    return tuple((0, int(p), "") if p.isdigit() else (-1, 0, p) for p in re.split(r"[.+-]", version))

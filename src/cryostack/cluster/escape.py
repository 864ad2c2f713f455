"""Quoting for the languages the cluster side writes: POSIX shell, Lua (Lmod) and Tcl (Environment
Modules). Values are validated where they enter; these make any value inert where it is rendered."""

from __future__ import annotations


def shquote(value: object) -> str:
    """One POSIX shell word whose value is VALUE, whatever it holds (single quotes)."""
    text = str(value)
    if "\0" in text:
        raise ValueError("a shell word cannot hold a NUL character")
    return "'" + text.replace("'", "'\"'\"'") + "'"


def lua(value: object) -> str:
    """A double-quoted Lua string literal: quote, backslash and every byte outside printable ASCII escaped."""
    out = []
    for byte in str(value).encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")  # decimal escapes: the same in Lua 5.1 to 5.4
    return '"' + "".join(out) + '"'


def tcl(value: object) -> str:
    """A double-quoted Tcl word with no substitution left in it: $ [ ] \\ " { } ; escaped, and every
    character outside printable ASCII as a \\u or \\U escape."""
    out = []
    for char in str(value):
        code = ord(char)
        if char in '$[]\\"{};':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'

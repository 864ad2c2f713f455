"""Writing files so that a reader sees the old content or the new, never a part of it."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional


def write_text_atomically(path: Path, text: str, mode: Optional[int] = None) -> None:
    """Write TEXT to a hidden temporary beside PATH (with MODE), then rename it over PATH."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

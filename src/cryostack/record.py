"""The build record (build/record.json): what build, sif, push, publish and bench know of each image.

One typed model, read and written only here, replaces the untyped report dict the stages used to
share. Each stage updates its own part of an entry; an entry whose fingerprint changed starts anew.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InputError
from .files import write_text_atomically

RECORD_NAME = "record.json"
BUILT, UP_TO_DATE, FAILED, UNAVAILABLE, SKIPPED = "built", "up-to-date", "failed", "unavailable", "skipped"


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckOutcome(Part):
    """The functional check's verdict and what it measured; `spec` is a digest of the declaration,
    so a check that a maintainer or site changed runs again."""

    name: str
    passed: bool
    summary: str
    measures: Dict[str, float] = {}
    seconds: float = 0.0
    spec: str = ""

    @classmethod
    def of(cls, result, spec_digest: str) -> "CheckOutcome":
        return cls(name=result.kind, passed=result.passed, summary=result.summary, measures=dict(result.measures),
                   seconds=result.seconds, spec=spec_digest)


class SifRecord(Part):
    path: str
    sha256: str
    size: int
    seconds: float = 0.0
    check: Optional[CheckOutcome] = None


class OciRecord(Part):
    registry: str
    repository: str
    digest: str
    references: List[str]
    pushed: bool


class ImageRecord(Part):
    """One matrix entry's latest build: its status and everything learnt about the image."""

    key: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    size: int = 0
    image: str = ""
    fingerprint: str = ""
    log: str = ""
    image_id: str = ""
    labels: Dict[str, str] = {}
    check: Optional[CheckOutcome] = None
    build_stage_size: int = 0
    sif: Optional[SifRecord] = None
    oci: Optional[OciRecord] = None

    @property
    def verified(self) -> bool:
        return self.status in (BUILT, UP_TO_DATE)


class BuildRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: Dict[str, ImageRecord] = Field(default_factory=dict)

    def get(self, key: str, fingerprint: Optional[str] = None) -> Optional[ImageRecord]:
        """The entry for KEY, or None; with FINGERPRINT, only if it records that very image."""
        entry = self.images.get(key)
        if entry is None or (fingerprint is not None and entry.fingerprint != fingerprint):
            return None
        return entry

    def merge(self, outcome: ImageRecord) -> None:
        """Take a build outcome; for an image that did not change, what is known of it (its SIF,
        push and check) is kept and only what the outcome says anew replaces it."""
        previous = self.get(outcome.key, outcome.fingerprint)
        if previous is not None and outcome.status == UP_TO_DATE:
            outcome = ImageRecord.model_validate({**previous.model_dump(), **outcome.model_dump(exclude_defaults=True)})
        self.images[outcome.key] = outcome


def path_in(build_dir: Path) -> Path:
    return Path(build_dir) / RECORD_NAME


def read(build_dir: Path) -> BuildRecord:
    """The record under BUILD_DIR (empty when there is none yet)."""
    path = path_in(build_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BuildRecord()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the build record: {exc}") from None
    try:
        return BuildRecord.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise InputError(f"{path}: not a cryostack build record ({str(exc).splitlines()[0]}); "
                         "remove it and build again") from None


def write(build_dir: Path, record: BuildRecord) -> None:
    write_text_atomically(path_in(build_dir), record.model_dump_json(indent=2, exclude_none=True) + "\n")

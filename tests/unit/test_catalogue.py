"""The catalogue: what ships loads, and every malformed case is one clear line with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cryostack.catalogue import load_catalogue
from cryostack.errors import InputError
from helpers import ROOT, cryostack


STAGED = ROOT.parent / "shared" / "sources"


@pytest.mark.skipif(not (STAGED / "SHA256SUMS").exists(), reason="no staged upstream sources beside the checkout")
def test_catalogue_pins_agree_with_the_staged_upstream_checksums():
    """The staged mirror's SHA256SUMS was checked against other packagers' pins: every catalogue
    source with the same file name must carry the same sha256."""
    staged = dict(reversed(line.split()) for line in (STAGED / "SHA256SUMS").read_text().splitlines() if line.strip())
    pinned = {version.source.file: version.source.sha256
              for family in load_catalogue(ROOT / "images").families.values()
              for version in family.versions.values() if version.source.file in staged}
    assert pinned, "no catalogue source is among the staged files"
    assert pinned == {name: staged[name] for name in pinned}


def test_an_unpinned_source_says_why():
    catalogue = load_catalogue(ROOT / "images")
    for family in catalogue.families.values():
        for version in family.versions.values():
            assert (version.source.sha256 is None) == bool(version.source.unpinned)


RELION = (ROOT / "images" / "relion.yaml").read_text()

# (description, edit to relion.yaml, expected line, expected fragment of the message)
MALFORMED = [
    ("unknown top-level key", lambda t: t.replace("description:", "descripton:", 1), 3,
     "descripton: unknown key 'descripton'"),
    ("unknown variant field", lambda t: t.replace("    cuda_arch: 75", "    cuda_archs: 75"), None,
     "variants.gcc-cuda75.cuda_archs: unknown key 'cuda_archs' (did you mean 'cuda_arch'? valid keys: accel, cpu_features, cpu_flags, cuda_arch"),
    ("wrong type", lambda t: t.replace("cuda_arch: 86", "cuda_arch: fast"), None,
     "variants.gcc-cuda86.cuda_arch: Input should be a valid integer"),
    ("missing sha256", lambda t: t.replace(
        "      sha256: acbf898e96513b092514a56ff2a255c69a795e7a6f04131eacc8f55e2a900c23\n", ""), None,
     "versions['5.0.1'].source: missing sha256"),
    ("malformed sha256", lambda t: t.replace("sha256: acbf898e", "sha256: zzbf898e"), None,
     "versions['5.0.1'].source.sha256: sha256 'zzbf898e"),
    ("bad YAML", lambda t: t.replace("family: relion", "family: [relion"), None, "invalid YAML"),
    ("duplicate key", lambda t: t.replace("    cuda_arch: 86\n", "    cuda_arch: 86\n    cuda_arch: 75\n"), None,
     "variants.gcc-cuda86.cuda_arch: duplicate key"),
    ("unknown variant in a version", lambda t: t.replace("variants: [gcc-cpu, oneapi-cpu-avx512]",
                                                          "variants: [gcc-cpu, gcc-cpu-avx2]"), None,
     "unknown variant 'gcc-cpu-avx2'"),
    ("cuda without an arch", lambda t: t.replace("    cuda_arch: 75\n", ""), None,
     "variants.gcc-cuda75: a compiled cuda variant needs cuda_arch"),
    ("missing required key", lambda t: t.replace("smoke:\n  command: relion_refine --version\n  expect: \"{version}\"\n", ""),
     None, "(top level): missing required key 'smoke'"),
]


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


@pytest.mark.parametrize("case, edit, line, fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_catalogue_is_one_line_naming_file_line_and_key(project: Path, case, edit, line, fragment):
    broken = edit(RELION)
    assert broken != RELION, "the edit must change the file"
    path = project / "images" / "relion.yaml"
    path.write_text(broken)
    with pytest.raises(InputError) as caught:
        load_catalogue(project / "images")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:"), message
    assert fragment in message, message
    reported = int(re.match(rf"{re.escape(str(path))}:(\d+):", message).group(1))
    assert 1 <= reported <= len(broken.splitlines())
    if line is not None:
        assert reported == line


def test_error_line_points_at_the_offending_key(project: Path):
    broken = RELION.replace("cuda_arch: 86", "cuda_arch: fast")
    (project / "images" / "relion.yaml").write_text(broken)
    with pytest.raises(InputError) as caught:
        load_catalogue(project / "images")
    assert f"relion.yaml:{_line_of(broken, 'cuda_arch: fast')}:" in str(caught.value)


def test_cli_exits_2_with_one_line_and_renders_nothing(project: Path):
    (project / "images" / "relion.yaml").write_text(RELION.replace("    cuda_arch: 75", "    cuda_archs: 75"))
    result = cryostack("--root", str(project), "render", "--build-dir", str(project / "out"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert "relion.yaml:" in result.stderr and "cuda_archs" in result.stderr
    assert not (project / "out").exists()


def test_family_must_match_its_file_name(project: Path):
    (project / "images" / "relion.yaml").write_text(RELION.replace("family: relion", "family: relion5"))
    with pytest.raises(InputError, match=r"relion\.yaml:\d+: family: 'relion5' must match the file name 'relion'"):
        load_catalogue(project / "images")


def test_empty_catalogue_directory_is_an_input_error(tmp_path: Path):
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no catalogue files"):
        load_catalogue(tmp_path / "images")

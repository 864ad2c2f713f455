"""Patches as a catalogue feature: pinned by sha256 (refused with file:line when they differ), part
of the fingerprint, applied in order after unpacking, staged beside the source, labelled."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cryostack.build import _stage_source
from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.errors import InputError
from cryostack.settings import BuildSettings
from helpers import ROOT, cryostack, edit_yaml

CTFFIND = "ctffind/4.1.14/gcc-cpu"
PATCH = "missing-return-values.patch"
# The shipped patch's pin, as the catalogue holds it.
PIN = hashlib.sha256((ROOT / "recipes" / "ctffind" / "patches" / PATCH).read_bytes()).hexdigest()


def _image(root: Path, key: str = CTFFIND):
    return next(i for i in planned_images(Project(root), BuildSettings(), key))


def _add_patch(root: Path, name: str, text: str, pin: str | None = None) -> Path:
    path = root / "recipes" / "ctffind" / "patches" / name
    path.write_text(text)
    sha = pin or hashlib.sha256(text.encode()).hexdigest()
    edit_yaml(root / "images" / "ctffind.yaml",
              lambda d: d["versions"]["4.1.14"]["patches"].append({"file": name, "sha256": sha}))
    return path


SECOND = "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-old\n+new\n"


def test_editing_a_patch_and_pinning_it_anew_changes_only_that_version_s_fingerprint(project: Path):
    before = {i.target.key: i.fingerprint.digest for i in planned_images(Project(project), BuildSettings(), None)}
    patch = project / "recipes" / "ctffind" / "patches" / PATCH
    patch.write_text(patch.read_text().replace("Forwarded: no", "Forwarded: not yet"))
    new_sha = hashlib.sha256(patch.read_bytes()).hexdigest()
    catalogue = project / "images" / "ctffind.yaml"
    catalogue.write_text(catalogue.read_text().replace(
        PIN, new_sha))
    after = {i.target.key: i.fingerprint.digest for i in planned_images(Project(project), BuildSettings(), None)}
    assert after[CTFFIND] != before[CTFFIND]
    assert {k: v for k, v in after.items() if k != CTFFIND} == {k: v for k, v in before.items() if k != CTFFIND}


def test_a_patch_that_differs_from_its_pin_is_refused_naming_the_catalogue_line(project: Path):
    patch = project / "recipes" / "ctffind" / "patches" / PATCH
    patch.write_text(patch.read_text() + "\n")
    text = (project / "images" / "ctffind.yaml").read_text()
    line = next(n for n, l in enumerate(text.splitlines(), 1) if f"sha256: {PIN}" in l)
    with pytest.raises(InputError) as caught:
        _image(project)
    message = str(caught.value)
    assert message.startswith(f"{project}/images/ctffind.yaml:{line}: versions['4.1.14'].patches[0].sha256: ")
    assert f"the catalogue pins {PIN}" in message and "refusing it" in message
    result = cryostack("--root", str(project), "render", "--only", "ctffind", "--build-dir", str(project / "out"))
    assert result.returncode == 2 and "ctffind.yaml:" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_patch_file_is_refused(project: Path):
    (project / "recipes" / "ctffind" / "patches" / PATCH).unlink()
    with pytest.raises(InputError, match=r"ctffind\.yaml:\d+: versions\['4\.1\.14'\]\.patches\[0\]: no patch file"):
        _image(project)


def test_bad_patch_declarations_are_input_errors(project: Path):
    catalogue = project / "images" / "ctffind.yaml"
    original = catalogue.read_text()
    catalogue.write_text(original.replace("- file: missing-return-values.patch", "- file: ../escape.patch"))
    with pytest.raises(InputError, match=r"patches\[0\]\.file: .*must be a plain file name"):
        _image(project)
    catalogue.write_text(original.replace(f"sha256: {PIN}", f"sha256: {PIN.upper()}"))
    with pytest.raises(InputError, match=rf"patches\[0\]\.sha256: .*{PIN.upper()[:8]}"):
        _image(project)


def test_patches_are_applied_in_catalogue_order_after_unpacking_and_labelled(project: Path):
    _add_patch(project, "second.patch", SECOND)
    image = _image(project)
    script = image.files["build.sh"]
    unpack = script.index("tar -xf /opt/cryostack/sources/")
    first = script.index(f"< /opt/cryostack/sources/patches/'{PATCH}'")
    second = script.index("< /opt/cryostack/sources/patches/'second.patch'")
    assert unpack < first < second < script.index("./configure")
    assert "patch -d /tmp/ctffind -p1 --forward --batch --fuzz=0" in script
    assert "sha256sum -c -" in script[unpack:first]  # checked again inside the build
    dockerfile = image.files["Dockerfile"]
    assert f'io.cryostack.patches="{PATCH}@sha256:{PIN},second.patch@sha256:' in dockerfile and ",second.patch@sha256:" in dockerfile
    assert "        patch \\\n" in dockerfile  # the build stage gets the patch program
    assert [p.name for p in image.patches] == [PATCH, "second.patch"]


def test_versions_without_patches_render_without_patch_tools(project: Path):
    relion = _image(project, "relion/5.0.1/gcc-cpu")
    assert relion.patches == () and "io.cryostack.patches" not in relion.files["Dockerfile"]
    assert "        patch \\\n" not in relion.files["Dockerfile"]


def test_a_recipe_that_cannot_apply_patches_refuses_them(project: Path):
    patch = project / "recipes" / "chimera" / "patches" / "x.patch"
    patch.parent.mkdir()
    patch.write_text(SECOND)
    sha = hashlib.sha256(SECOND.encode()).hexdigest()

    def pin(data):
        source = data["versions"]["1.17.3"]["source"]
        source.pop("unpinned", None)
        source["sha256"] = "0" * 64
        data["versions"]["1.17.3"]["patches"] = [{"file": "x.patch", "sha256": sha}]

    edit_yaml(project / "images" / "chimera.yaml", pin)
    with pytest.raises(InputError, match=r"chimera\.yaml:\d+: versions\['1\.17\.3'\]\.patches: recipes/chimera/recipe\.j2 "
                                         r"does not apply x\.patch"):
        _image(project, "chimera/1.17.3/cpu")


def test_patches_are_staged_beside_the_source(tmp_path: Path, project: Path):
    _add_patch(project, "second.patch", SECOND)
    image = _image(project)
    source = tmp_path / "ctffind_4.1.14.orig.tar.gz"
    source.write_bytes(b"tarball")
    dest = tmp_path / "context" / "sources"
    _stage_source(source, dest, image.patches)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "ctffind_4.1.14.orig.tar.gz", f"patches/{PATCH}", "patches/second.patch"]
    assert (dest / "patches" / "second.patch").read_text() == SECOND

"""Fingerprints change exactly when an input of that image changes."""

from __future__ import annotations

from pathlib import Path

from cryostack.app.images import planned_images
from cryostack.project import Project
from cryostack.settings import BuildSettings
from helpers import ROOT


def fingerprints(root: Path, settings: BuildSettings = BuildSettings()) -> dict:
    return {i.target.key: i.fingerprint.digest for i in planned_images(Project(root), settings, None)}


def changed(before: dict, after: dict) -> set:
    return {key for key in before if before[key] != after[key]}


def test_fingerprints_are_stable_and_distinct(project: Path):
    first, second = fingerprints(project), fingerprints(project)
    assert first == second
    assert fingerprints(ROOT) == first, "a copy of the checkout elsewhere gives the same fingerprints"
    assert len(set(first.values())) == len(first)
    assert all(len(digest) == 64 for digest in first.values())


def test_editing_one_recipe_changes_only_its_family(project: Path):
    before = fingerprints(project)
    recipe = project / "recipes" / "ctffind" / "recipe.j2"
    recipe.write_text(recipe.read_text().replace("--enable-openmp", "--enable-openmp --enable-latest-instruction-set"))
    assert changed(before, fingerprints(project)) == {"ctffind/4.1.14/gcc-cpu"}


def test_editing_a_shared_macro_changes_every_image_that_uses_it(project: Path):
    before = fingerprints(project)
    macros = project / "recipes" / "common" / "macros.j2"
    macros.write_text(macros.read_text().replace('"libopenmpi3", "openmpi-bin"', '"libopenmpi3", "openmpi-bin", "libpmix2"'))
    after = fingerprints(project)
    assert changed(before, after) == {k for k in before if k.startswith("relion/") and "oneapi" not in k}


def test_source_checksum_change_changes_only_that_version(project: Path):
    before = fingerprints(project)
    catalogue = project / "images" / "relion.yaml"
    catalogue.write_text(catalogue.read_text().replace("acbf898e9651", "0000000e9651"))
    assert changed(before, fingerprints(project)) == {k for k in before if k.startswith("relion/5.0.1/")}


def test_variant_flags_change_only_that_variant(project: Path):
    before = fingerprints(project)
    catalogue = project / "images" / "relion.yaml"
    catalogue.write_text(catalogue.read_text().replace("-O3 -march=x86-64-v2", "-O3 -march=x86-64-v3"))
    assert changed(before, fingerprints(project)) == {k for k in before if k.endswith("/gcc-cpu") and k.startswith("relion")}


def test_base_image_reference_is_an_input(project: Path):
    before = fingerprints(project)
    after = fingerprints(project, BuildSettings(base_image="local/debian:bookworm-20260101"))
    assert changed(before, after) == {k for k in before if not k.startswith("cryolo/") and "oneapi" not in k}
    oneapi = fingerprints(project, BuildSettings(oneapi_image="intel/oneapi-hpckit:2025.0.0-0-devel-ubuntu24.04"))
    assert changed(before, oneapi) == {k for k in before if "oneapi" in k}


def test_comments_in_the_catalogue_do_not_change_fingerprints(project: Path):
    before = fingerprints(project)
    catalogue = project / "images" / "relion.yaml"
    catalogue.write_text("# a maintainer's comment\n" + catalogue.read_text())
    assert fingerprints(project) == before

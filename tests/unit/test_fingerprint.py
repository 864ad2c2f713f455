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
    # The oneAPI builds start from the base image too (the toolkit is installed on it).
    assert changed(before, after) == {k for k in before if not k.startswith("cryolo/")}


def test_pinning_the_toolkit_changes_only_the_images_built_with_it(project: Path):
    before = fingerprints(project)
    catalogue = project / "images" / "relion.yaml"
    text = catalogue.read_text()
    start = text.index("          unpinned: >-\n            download Intel's oneAPI HPC Kit")
    end = text.index("CRYOSTACK_SOURCE_PATH directory\n", start) + len("CRYOSTACK_SOURCE_PATH directory\n")
    catalogue.write_text(text[:start] + "          sha256: " + "ab" * 32 + "\n" + text[end:])
    assert changed(before, fingerprints(project)) == {k for k in before if k.endswith("/oneapi-cpu-avx512")}


def test_comments_in_the_catalogue_do_not_change_fingerprints(project: Path):
    before = fingerprints(project)
    catalogue = project / "images" / "relion.yaml"
    catalogue.write_text("# a maintainer's comment\n" + catalogue.read_text())
    assert fingerprints(project) == before

"""The start-up guard of images that need CPU features, rendered from recipes/common/cpu-guard.sh.j2
and run by the real /bin/sh. The CPU it sees is a cpuinfo file bind-mounted over /proc/cpuinfo in
a private mount namespace (unshare), the way lxcfs presents its own files to containers."""

from __future__ import annotations

import os
import subprocess
import tempfile
import typing
from pathlib import Path
from typing import List, Optional

import jinja2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cryostack import hardware, recipes
from cryostack.schema import Variant
from helpers import ROOT
from test_hostile_values import HOSTILE, MARKER

SKYLAKE = "fpu sse sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl"
KNIGHTS_LANDING = "fpu sse sse2 avx avx2 fma avx512f avx512pf avx512er avx512cd"  # Xeon Phi: no BW, DQ, VL
BROADWELL = "fpu sse sse2 avx avx2 fma"


def cpuinfo(model: str, flags: Optional[str]) -> str:
    """Two processors as an x86 kernel lists them: the guard must stop at the first."""
    block = f"processor\t: {{n}}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n"
    if flags is not None:
        block += f"flags\t\t: {flags}\nvmx flags\t: vnmi\nbugs\t\t: spectre_v1\n"
    return "".join(block.format(n=n) + "\n" for n in range(2))


def render_guard(key: str, targets: List[str], features: List[str], prefix: str) -> str:
    """The guard as the plan renders it, over a stand-in recipe that only declares PREFIX."""
    env = recipes.environment(ROOT / "recipes")
    env.loader = jinja2.ChoiceLoader([jinja2.DictLoader({"stub/recipe.j2": "{% set prefix = stub_prefix %}"}), env.loader])
    names, flags = hardware.cpu_flags(features)
    context = {"key": key, "targets": targets, "recipe_template": "stub/recipe.j2", "stub_prefix": prefix,
               "cpu_guard": {"names": names, "flags": flags}}
    return env.get_template("common/cpu-guard.sh.j2").render(context)


@pytest.fixture(scope="module", autouse=True)
def private_mounts():
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here (unshare --mount: {probe.stderr.strip()})")


class Guarded:
    """A guard installed as it is in an image: PREFIX/bin/prog, and guard/prog linking to the guard."""

    def __init__(self, work: Path, prefix: Path, text: str):
        self.work, self.prefix = work, prefix
        (prefix / "bin").mkdir(parents=True, exist_ok=True)
        program = prefix / "bin" / "prog"
        program.write_text('#!/bin/sh\nprintf "ran %s\\n" "$0"\nfor a in "$@"; do printf "[%s]\\n" "$a"; done\nexit 7\n')
        program.chmod(0o755)
        (work / "guard").mkdir(exist_ok=True)
        (work / "cpu-guard").write_text(text)
        (work / "cpu-guard").chmod(0o755)
        link = work / "guard" / "prog"
        if not link.is_symlink():
            link.symlink_to("../cpu-guard")

    def run(self, info: str, *args: str) -> subprocess.CompletedProcess:
        """Run prog on a CPU described by INFO; stdout and stderr as text, line ends untranslated."""
        fake = self.work / "cpuinfo"
        fake.write_text(info)
        # Mount, then exec the program through PATH, as `docker run IMAGE prog` does.
        script = 'mount --bind "$1" /proc/cpuinfo && shift && exec prog "$@"'
        result = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(fake), *args], capture_output=True,
                                env={"PATH": f"{self.work / 'guard'}:{self.prefix / 'bin'}:/usr/bin:/bin"})
        result.stdout, result.stderr = (os.fsdecode(out) for out in (result.stdout, result.stderr))
        return result


@pytest.fixture
def guarded(tmp_path: Path) -> Guarded:
    text = render_guard("fam/1.0/gcc-avx512", ["c6i", "m7i"], ["avx512"], str(tmp_path / "opt"))
    return Guarded(tmp_path, tmp_path / "opt", text)


def test_every_feature_a_variant_may_declare_has_its_cpuinfo_flags():
    declarable = typing.get_args(typing.get_args(Variant.model_fields["cpu_features"].annotation)[0])
    assert set(declarable) == set(hardware.CPU_FLAGS)
    assert set().union(*(row.features for row in hardware.shipped().rows.values())) <= set(declarable)


def test_a_cpu_with_all_five_avx512_subsets_runs_the_program_with_its_arguments_and_exit_code(guarded):
    arguments = ["two words", "", "it's \"quoted\"", "$HOME", "*", "-x"]
    result = guarded.run(cpuinfo("Intel Xeon Platinum 8375C", SKYLAKE), *arguments)
    assert result.returncode == 7 and result.stderr == "", result
    assert result.stdout.splitlines() == [f"ran {guarded.prefix}/bin/prog"] + [f"[{a}]" for a in arguments]


def test_a_cpu_with_avx512f_but_not_bw_dq_vl_is_refused_in_one_line(guarded):
    # Knights Landing has AVX-512 Foundation: code built for Skylake's AVX-512 would still die of SIGILL.
    result = guarded.run(cpuinfo("Intel Xeon Phi CPU 7210", KNIGHTS_LANDING), "--version")
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == (
        "prog: fam/1.0/gcc-avx512 needs AVX-512 (avx512f avx512cd avx512bw avx512dq avx512vl), which this CPU lacks "
        "(Intel Xeon Phi CPU 7210: no avx512bw avx512dq avx512vl); run it on an instance family with AVX-512: c6i, m7i\n")


def test_a_cpu_without_avx512_is_refused_with_every_missing_flag(guarded):
    result = guarded.run(cpuinfo("Intel Xeon CPU E5-2686 v4 @ 2.30GHz", BROADWELL))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result
    assert "(Intel Xeon CPU E5-2686 v4 @ 2.30GHz: no avx512f avx512cd avx512bw avx512dq avx512vl)" in result.stderr


def test_without_a_flags_line_the_guard_cannot_tell_and_runs_the_program(guarded):
    # An empty /proc/cpuinfo, or a kernel whose format has no flags line: refusing would claim what
    # the guard does not know.
    for info in ("", cpuinfo("ARM Neoverse", None)):
        result = guarded.run(info, "a")
        assert result.returncode == 7 and result.stdout.splitlines()[1:] == ["[a]"], result


def test_without_families_to_name_the_message_names_the_feature(tmp_path):
    guarded = Guarded(tmp_path, tmp_path / "opt", render_guard("f/1/v", [], ["avx512"], str(tmp_path / "opt")))
    result = guarded.run(cpuinfo("Old", BROADWELL))
    assert result.returncode == 2 and result.stderr.endswith("; run it on a CPU with AVX-512\n"), result


# --- hostile values --------------------------------------------------------------------------------

# A path component the file system can hold (no NUL, no slash, not . or ..).
COMPONENT = HOSTILE.map(lambda s: s.replace("\0", "").replace("/", "_")[:200]).filter(lambda s: s not in ("", ".", ".."))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=HOSTILE, targets=st.lists(HOSTILE, max_size=3), directory=COMPONENT)
def test_hostile_keys_family_names_and_prefixes_are_refused_or_inert(key, targets, directory):
    with tempfile.TemporaryDirectory() as work:
        prefix = Path(work, directory, "opt")
        try:
            text = render_guard(key, targets, ["avx512"], str(prefix))
        except jinja2.TemplateError as exc:  # one_line refuses what would break the message's line
            event("refused")
            assert "cannot be rendered on one line" in str(exc)
            return
        event("rendered")
        guarded = Guarded(Path(work), prefix, text)
        refused = guarded.run(cpuinfo("Old", BROADWELL), "x")
        assert refused.returncode == 2 and refused.stdout == "", refused
        where = f"an instance family with AVX-512: {', '.join(targets)}" if targets else "a CPU with AVX-512"
        assert refused.stderr == (f"prog: {key} needs AVX-512 (avx512f avx512cd avx512bw avx512dq avx512vl), which "
                                  f"this CPU lacks (Old: no avx512f avx512cd avx512bw avx512dq avx512vl); run it on {where}\n")
        ran = guarded.run(cpuinfo("New", SKYLAKE), "$(id)", "")
        assert ran.returncode == 7 and ran.stdout == f"ran {prefix}/bin/prog\n[$(id)]\n[]\n", ran
    assert not MARKER.exists()
    # In a directory name the marker's slashes became '_': run there, it would land in the cwd.
    assert not Path(str(MARKER).replace("/", "_")).exists()

"""Module files with the real module systems from Debian: Lmod (.lua) and Environment Modules
(Tcl, what ParallelCluster's AMIs ship). Loading a version or variant makes that image run, the
default is declared, versions and presets replace each other, and the login profile finds them."""

from __future__ import annotations

import os
import subprocess

import pytest

from sites import LMOD_INIT, Recorder, make_tree, module_shell, tcl_modulecmd


def _need(system: str) -> None:
    missing = {"lmod": not LMOD_INIT.is_file(), "tcl": tcl_modulecmd() is None}[system]
    if missing:
        reason = f"needs {system} modules from Debian (ci/setup.sh installs lmod and unpacks environment-modules)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    work = tmp_path_factory.mktemp("modules")
    return make_tree(work), Recorder(work)


SYSTEMS = ["lmod", "tcl"]


def shell(system, tree, script: str, **env):
    _need(system)
    prefix, recorder = tree
    result = module_shell(system, prefix / "modules" / system, script, recorder.env(**env))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def vars_of(output: str) -> dict:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line and not line.startswith(" "))


def show(tag: str = "") -> str:
    """Shell lines printing the selector, RELION's queue and its MPI ranks, each name prefixed by TAG."""
    return "".join(f'echo "{tag}{name}=${{{variable}:-}}"\n' for name, variable in
                   (("R", "CRYOSTACK_RELION"), ("Q", "RELION_QUEUE_NAME"), ("N", "RELION_QSUB_NRMPI")))


@pytest.mark.parametrize("system", SYSTEMS)
def test_loading_a_version_or_variant_makes_that_image_run(system, tree):
    prefix, recorder = tree
    for module, partition, image in (("cryostack/relion/4.0.1-gcc-cuda86", "g5", "relion/4.0.1/gcc-cuda86"),
                                     ("cryostack/relion/4.0.1", "c6i", "relion/4.0.1/gcc-cpu"),
                                     ("cryostack/relion/5.0.1-gcc-cpu", "c6i", "relion/5.0.1/gcc-cpu"),
                                     ("cryostack/relion", "g4dn", "relion/5.0.1/gcc-cuda75")):
        recorder.reset()
        shell(system, tree, f"module load {module}\nrelion_refine_mpi --o x\n", SLURM_JOB_PARTITION=partition)
        argv = recorder.calls()[-1]["argv"]
        assert f"/images/{image}/" in next(a for a in argv if a.endswith(".sif")), (system, module)


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_default_is_declared_and_each_image_points_at_its_queue(system, tree):
    # 5.0.1-oneapi-cpu-avx512 sorts last: the declared default is the version the site runs.
    got = vars_of(shell(system, tree, "module load cryostack/relion\n" + show()).stdout)
    assert got["R"] == "5.0.1"
    got = vars_of(shell(system, tree, "module load cryostack/relion/5.0.1-oneapi-cpu-avx512\n" + show()).stdout)
    assert got == {"R": "5.0.1-oneapi-cpu-avx512", "Q": "c6i", "N": ""}


@pytest.mark.parametrize("system", SYSTEMS)
def test_versions_and_presets_replace_each_other(system, tree):
    # Lmod swaps a family member on load; Environment Modules refuses the conflict and swaps with `switch`.
    swap = "module load" if system == "lmod" else "module switch"
    script = (f"module load cryostack/relion/5.0.1\nmodule load cryostack/relion-preset/polish\n"
              f"{swap} cryostack/relion-preset/class3d\n{swap} cryostack/relion/5.0.1-gcc-cuda86\n"
              "echo \"$LOADEDMODULES\" | tr ':' '\\n' | sort | tr '\\n' ' '; echo\n" + show()
              + "module unload cryostack/relion-preset\n" + show("after_"))
    output = shell(system, tree, script).stdout
    loaded = output.splitlines()[0].split()
    assert loaded == ["cryostack/relion-preset/class3d",
                                                           "cryostack/relion/5.0.1-gcc-cuda86"]
    got = vars_of(output)
    assert (got["R"], got["Q"], got["N"]) == ("5.0.1-gcc-cuda86", "g5", "33"), "class3d: 8 x 4 GPUs + 1"
    assert (got["after_R"], got["after_N"]) == ("5.0.1-gcc-cuda86", ""), "the preset's ranks went with it"
    if system == "tcl":
        # Environment Modules keeps pushed values per module: the preset's queue goes, the version's returns.
        # (Lmod's pushenv is a plain stack: after a version swap under a preset it returns the old
        # version's queue; the README says to swap versions before loading a preset.)
        assert got["after_Q"] == "g5"
    if system == "tcl":
        refused = module_shell(system, tree[0] / "modules" / system,
                               "module load cryostack/relion/5.0.1\nmodule load cryostack/relion/4.0.1", tree[1].env())
        assert "conflict" in refused.stderr.lower()


@pytest.mark.parametrize("system", SYSTEMS)
def test_unloading_a_preset_gives_back_the_versions_queue(system, tree):
    script = ("module load cryostack/relion/5.0.1-oneapi-cpu-avx512\nmodule load cryostack/relion-preset/refine3d\n"
              + show() + "module unload cryostack/relion-preset/refine3d\n" + show("after_"))
    got = vars_of(shell(system, tree, script).stdout)
    assert (got["Q"], got["N"]) == ("g4dn", "17"), "refine3d: 2 x 8 GPUs + 1"
    assert (got["after_Q"], got["after_N"]) == ("c6i", "")


@pytest.mark.parametrize("system", SYSTEMS)
def test_help_and_whatis_show_without_errors(system, tree):
    result = shell(system, tree, "module help cryostack/relion/5.0.1-gcc-cuda86 2>&1\nmodule whatis cryostack/relion-preset/polish 2>&1")
    assert "relion_refine_mpi" in result.stdout and "Name: relion-preset polish" in result.stdout
    assert "error" not in result.stdout.lower()


def login_profile(prefix) -> str:
    script = (prefix / "on-node-configured.sh").read_text()
    return script.split("<<'PROFILE'\n", 1)[1].split("\nPROFILE\n", 1)[0] + "\n"


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_login_profile_sorts_after_the_module_init_and_finds_the_modules(system, tmp_path):
    _need("lmod")
    prefix = make_tree(tmp_path, module_system=system)
    profile = tmp_path / "zz-cryostack.sh"
    profile.write_text(login_profile(prefix))
    # /etc/profile sources profile.d/*.sh in glob order: the module systems' own scripts come first.
    for locale in ("C", "C.UTF-8"):
        names = subprocess.run(["bash", "-c", "cd \"$1\" && touch modules.sh z00_lmod.sh lmod.sh && echo *.sh", "-",
                                str(tmp_path)], capture_output=True, text=True, env=dict(os.environ, LC_ALL=locale)).stdout
        assert names.split()[-1] == "zz-cryostack.sh", names
    # Where the module system's own script has not run, the profile sources its init itself (here Lmod's).
    result = subprocess.run(["bash", "--noprofile", "--norc", "-c", f". {profile}; echo \"$PATH\"; echo \"$MODULEPATH\""],
                            capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith(("LMOD", "MODULE", "BASH_FUNC"))})
    path, modulepath = result.stdout.splitlines()[:2]
    assert path.split(":")[0] == str(prefix / "bin")
    assert str(prefix / "modules" / system) in modulepath.split(":"), result.stderr
    again = subprocess.run(["sh", "-c", f". {profile}; . {profile}; echo \"$PATH\""], capture_output=True, text=True)
    assert again.stdout.count(str(prefix / "bin")) == 1, "sourcing twice adds nothing twice (and works in sh)"

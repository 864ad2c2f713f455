"""The oneAPI variant as rendered and planned: the site's pinned toolkit on the base image, Intel MPI in
the runtime stage and in the labels the cluster side reads, and one-line refusals for what is not pinned
or not valid."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cryostack.app.images import planned_images
from cryostack.catalogue import load_catalogue
from cryostack.cluster.site import load_site
from cryostack.cluster.wrappers import read_images
from cryostack.errors import InputError
from cryostack.project import Project
from cryostack.settings import BuildSettings
from helpers import ROOT, cryostack, write_site
from sites import entry

ONEAPI = "relion/5.0.1/oneapi-cpu-avx512"


@pytest.fixture(scope="module")
def shipped():
    return {image.target.key: image for image in planned_images(Project(ROOT), BuildSettings(), None)}


def _stage(dockerfile: str, name: str) -> str:
    return dockerfile.split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_the_oneapi_build_installs_the_pinned_installers_on_the_sites_base_image(shipped):
    files = shipped[ONEAPI].files
    toolkit = shipped[ONEAPI].target.variant.toolkit
    assert re.findall(r"^FROM (\S+) AS", files["Dockerfile"], re.M) == ["local/debian:bookworm"] * 2
    script = files["build.sh"]
    for installer in toolkit.installers:
        check = f"/opt/cryostack/sources/{installer.file}' | sha256sum -c -"
        run = (f"sh /opt/cryostack/sources/'{installer.file}' -a --silent --eula accept --install-dir /opt/intel/oneapi"
               f" --components '{':'.join(installer.components)}'")
        assert check in script and run in script
        assert script.index(check) < script.index(run) < script.index("cmake -S")
    assert "source /opt/intel/oneapi/setvars.sh" in script
    for option in ("-DCMAKE_C_COMPILER=icx", "-DCMAKE_CXX_COMPILER=icpx", "-DMPI_C_COMPILER=mpiicx",
                   "-DMPI_CXX_COMPILER=mpiicpx", "-DMKLFFT=ON", "-DCMAKE_CXX_FLAGS='-O3 -xCORE-AVX512 -qopt-zmm-usage=high'"):
        assert option in script
    # The runtime part is gathered after the install, into the prefix the runtime stage copies.
    assert script.index("cmake --install") < script.index("runtime='/opt/relion/oneapi'")


def test_the_oneapi_runtime_stage_carries_intel_mpi_not_open_mpi_or_the_compilers(shipped):
    runtime = _stage(shipped[ONEAPI].files["Dockerfile"], "runtime")
    for debian_mpi_or_fft in ("openmpi", "libfftw3", "libtbb"):
        assert debian_mpi_or_fft not in runtime
    assert "COPY --from=build /opt/relion /opt/relion" in runtime and "/opt/intel" not in runtime
    assert 'I_MPI_ROOT="/opt/relion/oneapi/mpi"' in runtime
    assert 'FI_PROVIDER_PATH="/opt/relion/oneapi/libfabric/prov"' in runtime
    # The CPU guard comes first (the variant needs AVX-512), then the programs and Intel MPI.
    assert 'PATH="/opt/cryostack/guard:/opt/relion/bin:/opt/relion/oneapi/mpi/bin:$PATH"' in runtime
    assert "/opt/relion/oneapi/lib' > /etc/ld.so.conf.d/" in runtime
    # Intel MPI and libfabric choose the fabric; the cluster wrapper sets the Slurm bootstrap.
    for left_to_the_site in ("LD_LIBRARY_PATH", "I_MPI_FABRICS", "FI_PROVIDER=", "I_MPI_HYDRA_BOOTSTRAP"):
        assert left_to_the_site not in runtime
    assert 'io.cryostack.mpi="intelmpi"' in runtime
    assert 'io.cryostack.mpi="openmpi"' in _stage(shipped["relion/5.0.1/gcc-cpu"].files["Dockerfile"], "runtime")
    assert "io.cryostack.mpi" not in shipped["ctffind/4.1.14/gcc-cpu"].files["Dockerfile"]


def test_the_cluster_takes_the_launcher_from_the_image_label(shipped, tmp_path):
    """The label the oneAPI image carries makes cryostack-mpirun use the site's Hydra, whatever the toolchain says."""
    site = load_site(write_site(tmp_path / "site.yaml"))
    rendered = dict(re.findall(r'^\s+(io\.cryostack\.\S+?)="([^"]*)"', shipped[ONEAPI].files["Dockerfile"], re.M))
    manifest = {"images": {ONEAPI: entry("relion", "5.0.1", "oneapi-cpu-avx512", targets=["c6i"], toolchain="gcc",
                                         labels=rendered, commands=["relion_refine_mpi"])}}
    [image] = read_images(manifest, site, tmp_path / "manifest.json")
    assert image.mpi == "intelmpi"


def test_an_unpinned_toolkit_blocks_its_entries_with_one_line_saying_what_to_do(shipped):
    reason = shipped[ONEAPI].target.blocked
    assert reason is not None and "\n" not in reason
    for installer in shipped[ONEAPI].target.variant.toolkit.unpinned():
        assert f"toolkit installer {installer.file} has no sha256 pin: download" in reason
        assert f"sha256sum {installer.file}" in reason
    assert shipped["relion/5.0.1/gcc-cpu"].target.blocked is None


TOOLKIT_ERRORS = [
    ("unknown key in the toolkit", "    toolkit:\n", "    toolkit:\n      mirror: intel/oneapi-hpckit:latest\n",
     "variants.oneapi-cpu-avx512.toolkit.mirror: unknown key 'mirror'"),
    ("unknown key in an installer", "          supplied_by_maintainer: true\n          components: [intel.oneapi.lin.mpi",
     "          supplied_by_maintainer: true\n          options: --cli\n          components: [intel.oneapi.lin.mpi",
     "toolkit.installers[1].options: unknown key 'options'"),
    ("a bad component", "components: [intel.oneapi.lin.mpi.devel]", "components: ['intel.oneapi.lin.mpi.devel; rm -rf /']",
     "toolkit.installers[1].components[0]:"),
    ("an installer from Debian", "          supplied_by_maintainer: true\n          components: [intel.oneapi.lin.mpi",
     "          debian: {package: intel-mkl, suite: bookworm}\n          components: [intel.oneapi.lin.mpi",
     "a toolkit installer comes from the site"),
]


@pytest.mark.parametrize("case, old, new, fragment", TOOLKIT_ERRORS, ids=[e[0] for e in TOOLKIT_ERRORS])
def test_a_malformed_toolkit_is_one_line_naming_file_line_and_key(project: Path, case, old, new, fragment):
    path = project / "images" / "relion.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_catalogue(project / "images")
    message = str(caught.value)
    assert "\n" not in message and re.match(rf"{re.escape(str(path))}:\d+: ", message), message
    assert fragment in message, message


def test_the_toolkit_belongs_to_oneapi_variants_only(project: Path):
    path = project / "images" / "relion.yaml"
    text = path.read_text()
    path.write_text(text.replace("    toolchain: oneapi\n", "    toolchain: gcc\n"))
    with pytest.raises(InputError, match=r"variants.oneapi-cpu-avx512: toolkit is only for toolchain: oneapi"):
        load_catalogue(project / "images")
    start = text.index("    # Intel's offline installers")
    end = text.index("versions:")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(InputError, match=r"variants.oneapi-cpu-avx512: toolchain oneapi needs toolkit: "):
        load_catalogue(project / "images")


def test_the_removed_oneapi_image_setting_is_refused_not_ignored(tmp_path):
    result = cryostack("render", "--build-dir", str(tmp_path / "out"),
                       env=dict(os.environ, CRYOSTACK_ONEAPI_IMAGE="intel/oneapi-hpckit:2024.2.1-0-devel-ubuntu22.04"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cryostack: error: setting oneapi_image (CRYOSTACK_ONEAPI_IMAGE) was removed: the oneAPI toolkit is Intel's "
        "offline installers, pinned by sha256 in the catalogue (images/relion.yaml, variant oneapi-cpu-avx512, "
        "toolkit:), built on the base image"]
    assert not (tmp_path / "out").exists()

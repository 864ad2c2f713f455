#!/bin/bash
# Build stage of relion 5.0.1 (oneapi-cpu-avx512), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/relion/recipe.j2.
set -euxo pipefail
echo 'unpinned  /opt/cryostack/sources/l_BaseKit_p_2024.2.1.100_offline.sh' | sha256sum -c -
sh /opt/cryostack/sources/'l_BaseKit_p_2024.2.1.100_offline.sh' -a --silent --eula accept --install-dir /opt/intel/oneapi --components 'intel.oneapi.lin.dpcpp-cpp-compiler:intel.oneapi.lin.mkl.devel:intel.oneapi.lin.tbb.devel'
echo 'unpinned  /opt/cryostack/sources/l_HPCKit_p_2024.2.1.79_offline.sh' | sha256sum -c -
sh /opt/cryostack/sources/'l_HPCKit_p_2024.2.1.79_offline.sh' -a --silent --eula accept --install-dir /opt/intel/oneapi --components 'intel.oneapi.lin.mpi.devel'
# setvars.sh reads unset variables and is long: neither -u nor -x while it runs.
set +ux; source /opt/intel/oneapi/setvars.sh; set -ux
export CCACHE_DIR=/root/.cache/ccache
echo 'acbf898e96513b092514a56ff2a255c69a795e7a6f04131eacc8f55e2a900c23  /opt/cryostack/sources/relion-5.0.1.tar.gz' | sha256sum -c -
mkdir -p /tmp/relion
tar -xf /opt/cryostack/sources/'relion-5.0.1.tar.gz' --strip-components=1 -C /tmp/relion
cmake -S /tmp/relion -B /tmp/relion/build -DCMAKE_INSTALL_PREFIX=/opt/relion -DCMAKE_BUILD_TYPE=Release -DGUI=OFF -DBUILD_SHARED_LIBS=ON -DCMAKE_SHARED_LINKER_FLAGS='-Wl,--no-as-needed -ltbb' -DCMAKE_C_FLAGS='-O3 -xCORE-AVX512 -qopt-zmm-usage=high' -DCMAKE_CXX_FLAGS='-O3 -xCORE-AVX512 -qopt-zmm-usage=high' -DCUDA=OFF -DALTCPU=ON -DCMAKE_C_COMPILER=icx -DCMAKE_CXX_COMPILER=icpx -DMPI_C_COMPILER=mpiicx -DMPI_CXX_COMPILER=mpiicpx -DMKLFFT=ON -DFETCH_WEIGHTS=OFF -DFETCH_TORCH_MODELS=OFF
cmake --build /tmp/relion/build --parallel "$(nproc)"
cmake --install /tmp/relion/build --strip
runtime='/opt/relion/oneapi'
mkdir -p "$runtime/lib"
find '/opt/relion' -type f \( -perm -u+x -o -name '*.so*' \) -print0 | while IFS= read -r -d '' program; do ldd "$program" 2>/dev/null || true; done | awk '$2 == "=>" && index($3, "/opt/intel/oneapi/") == 1 {print $3}' | sort -u > /tmp/toolkit-libraries
while IFS= read -r library; do cp -L "$library" "$runtime/lib/"; done < /tmp/toolkit-libraries
if mkl_core=$(grep -m1 '/libmkl_core\.so' /tmp/toolkit-libraries); then
    for kernel in "$(dirname "$mkl_core")"/libmkl_{avx512,vml_avx512,def,vml_def}.so.*; do if [ -e "$kernel" ]; then cp -L "$kernel" "$runtime/lib/"; fi; done
fi
if [ -n "${I_MPI_ROOT:-}" ]; then
    mkdir -p "$runtime/mpi/bin"
    for tool in mpirun mpiexec mpiexec.hydra hydra_bstrap_proxy hydra_pmi_proxy hydra_nameserver cpuinfo; do if [ -e "$I_MPI_ROOT/bin/$tool" ]; then cp -L "$I_MPI_ROOT/bin/$tool" "$runtime/mpi/bin/"; fi; done
    if [ -d "$I_MPI_ROOT/etc" ]; then cp -rL "$I_MPI_ROOT/etc" "$runtime/mpi/"; fi
    for providers in "$I_MPI_ROOT/opt/mpi/libfabric/lib/prov" "$I_MPI_ROOT/libfabric/lib/prov"; do if [ -d "$providers" ]; then mkdir -p "$runtime/libfabric" && cp -rL "$providers" "$runtime/libfabric/"; fi; done
fi
echo "toolkit runtime part: $(wc -l < /tmp/toolkit-libraries) libraries, $(du -sh "$runtime" | cut -f1)"
rm /tmp/toolkit-libraries
rm -rf /tmp/relion
rm -rf /opt/cryostack

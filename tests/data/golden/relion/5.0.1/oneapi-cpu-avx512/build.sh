#!/bin/bash
# Build stage of relion 5.0.1 (oneapi-cpu-avx512), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/relion/recipe.j2.
set -euxo pipefail
# setvars.sh reads unset variables; it is not ours to fix.
set +u; source /opt/intel/oneapi/setvars.sh; set -u
export CCACHE_DIR=/root/.cache/ccache
echo 'acbf898e96513b092514a56ff2a255c69a795e7a6f04131eacc8f55e2a900c23  /opt/cryostack/sources/relion-5.0.1.tar.gz' | sha256sum -c -
mkdir -p /tmp/relion
tar -xf /opt/cryostack/sources/'relion-5.0.1.tar.gz' --strip-components=1 -C /tmp/relion
cmake -S /tmp/relion -B /tmp/relion/build -DCMAKE_INSTALL_PREFIX=/opt/relion -DCMAKE_BUILD_TYPE=Release -DGUI=OFF -DBUILD_SHARED_LIBS=ON -DCMAKE_C_FLAGS='-O3 -xCORE-AVX512 -qopt-zmm-usage=high' -DCMAKE_CXX_FLAGS='-O3 -xCORE-AVX512 -qopt-zmm-usage=high' -DCUDA=OFF -DALTCPU=ON -DCMAKE_C_COMPILER=icx -DCMAKE_CXX_COMPILER=icpx -DMPI_C_COMPILER=mpiicx -DMPI_CXX_COMPILER=mpiicpx -DMKLFFT=ON -DFETCH_WEIGHTS=OFF -DFETCH_TORCH_MODELS=OFF
cmake --build /tmp/relion/build --parallel "$(nproc)"
cmake --install /tmp/relion/build --strip
rm -rf /tmp/relion
rm -rf /opt/cryostack

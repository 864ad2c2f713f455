#!/bin/bash
# Build stage of relion 5.0.1 (gcc-cuda86), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/relion/recipe.j2.
set -euxo pipefail
export CCACHE_DIR=/root/.cache/ccache
echo 'acbf898e96513b092514a56ff2a255c69a795e7a6f04131eacc8f55e2a900c23  /opt/cryostack/sources/relion-5.0.1.tar.gz' | sha256sum -c -
mkdir -p /tmp/relion
tar -xf /opt/cryostack/sources/'relion-5.0.1.tar.gz' --strip-components=1 -C /tmp/relion
cmake -S /tmp/relion -B /tmp/relion/build -DCMAKE_INSTALL_PREFIX=/opt/relion -DCMAKE_BUILD_TYPE=Release -DGUI=OFF -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCUDA=ON -DCUDA_ARCH=86 -DCUDA_HOST_COMPILER=/usr/bin/g++-11 -DALTCPU=OFF -DFETCH_WEIGHTS=OFF -DFETCH_TORCH_MODELS=OFF
cmake --build /tmp/relion/build --parallel "$(nproc)"
cmake --install /tmp/relion/build --strip
ccache --show-stats || true
rm -rf /tmp/relion
rm -rf /opt/cryostack

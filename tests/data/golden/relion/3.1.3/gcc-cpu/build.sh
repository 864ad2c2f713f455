#!/bin/bash
# Build stage of relion 3.1.3 (gcc-cpu), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/relion/recipe.j2.
set -euxo pipefail
export CCACHE_DIR=/root/.cache/ccache
echo 'f10934058e0670807b7004899d7b5103c21ad77841219352c66a33f98586d42e  /opt/cryostack/sources/relion_3.1.3.orig.tar.gz' | sha256sum -c -
mkdir -p /tmp/relion
tar -xf /opt/cryostack/sources/'relion_3.1.3.orig.tar.gz' --strip-components=1 -C /tmp/relion
cmake -S /tmp/relion -B /tmp/relion/build -DCMAKE_INSTALL_PREFIX=/opt/relion -DCMAKE_BUILD_TYPE=Release -DGUI=OFF -DBUILD_SHARED_LIBS=ON -DCMAKE_SHARED_LINKER_FLAGS='-Wl,--no-as-needed -ltbb' -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_FLAGS='-O3 -march=x86-64-v2' -DCMAKE_CXX_FLAGS='-O3 -march=x86-64-v2' -DCUDA=OFF -DALTCPU=ON
cmake --build /tmp/relion/build --parallel "$(nproc)"
cmake --install /tmp/relion/build --strip
ccache --show-stats || true
rm -rf /tmp/relion
rm -rf /opt/cryostack

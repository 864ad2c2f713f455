#!/bin/bash
# Build stage of ctffind 4.1.14 (gcc-cpu), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/ctffind/recipe.j2.
set -euxo pipefail
echo '5f3eee53267fd1897cc1748d2154f7352452e881bcffd07d049d39a3c3b373b5  /opt/cryostack/sources/ctffind_4.1.14.orig.tar.gz' | sha256sum -c -
mkdir -p /tmp/ctffind
tar -xf /opt/cryostack/sources/'ctffind_4.1.14.orig.tar.gz' --strip-components=1 -C /tmp/ctffind
echo 'e7a980f9c4f874091b1b7f66e7ebdf739abf98c3b6375db60a384ef025b4bc2a  /opt/cryostack/sources/patches/missing-return-values.patch' | sha256sum -c -
patch -d /tmp/ctffind -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch < /opt/cryostack/sources/patches/'missing-return-values.patch'
cd /tmp/ctffind
./configure --prefix=/opt/ctffind --disable-debugmode --enable-openmp --with-wx-config=wx-config CXXFLAGS='-O2 -march=x86-64-v2'
make -j "$(nproc)"
make install
cd /
rm -rf /tmp/ctffind
rm -rf /opt/cryostack

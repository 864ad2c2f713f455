#!/bin/bash
# Build stage of cryolo 1.9.9 (cuda), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/cryolo/recipe.j2.
set -euxo pipefail
echo 'b49b854067aa262769ac3b578c24e6d0f24811c784749bac2e4b546ee7270ad5  /opt/cryostack/sources/cryolo-1.9.9.tar.gz' | sha256sum -c -
python3 -m venv /opt/cryolo
/opt/cryolo/bin/pip install --no-cache-dir nvidia-pyindex
/opt/cryolo/bin/pip install --no-cache-dir 'cryolo[c11] @ file:///opt/cryostack/sources/cryolo-1.9.9.tar.gz'
rm -rf /opt/cryostack

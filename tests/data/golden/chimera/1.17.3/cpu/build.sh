#!/bin/bash
# Build stage of chimera 1.17.3 (cpu), run by the Dockerfile and the
# Apptainer definition alike. Rendered by cryostack from recipes/chimera/recipe.j2.
set -euxo pipefail
echo 'unpinned  /opt/cryostack/sources/chimera-1.17.3-linux_x86_64_osmesa.bin' | sha256sum -c -
installer=/opt/cryostack/sources/'chimera-1.17.3-linux_x86_64_osmesa.bin'
chmod +x "$installer"
printf '%s\nno\n' /opt/chimera | "$installer"
test -x /opt/chimera/bin/chimera
rm -rf /opt/cryostack

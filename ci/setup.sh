#!/usr/bin/env bash
# Prepare a Debian machine (run as root) for cryostack: system packages, a virtual environment
# with cryostack and its tools in .venv/, and a running Docker engine. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v dockerd >/dev/null || packages+=(docker.io)
command -v debootstrap >/dev/null || packages+=(debootstrap)
command -v git >/dev/null || packages+=(git)
command -v docker-registry >/dev/null || packages+=(docker-registry)   # the OCI registry tests push to
command -v htpasswd >/dev/null || packages+=(apache2-utils)
command -v slurmctld >/dev/null || packages+=(munge slurmctld slurmd slurm-client libpmix2)   # real Slurm for the wrapper tests
dpkg -s libpmix-dev >/dev/null 2>&1 || packages+=(libpmix-dev)   # Slurm's pmix plugin loads the unversioned library
command -v mpirun >/dev/null || packages+=(openmpi-bin)   # the host launcher of the hybrid MPI tests
command -v objdump >/dev/null || packages+=(binutils)   # readelf/objdump: the oneAPI test reads the built binary
command -v qemu-x86_64 >/dev/null || packages+=(qemu-user)   # a CPU without AVX-512: the guard test shows the SIGILL it spares
command -v gcc >/dev/null || packages+=(gcc)   # the stand-in icx runs over it in a unit-sized test
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
command -v tclsh >/dev/null || packages+=(tcl)   # Environment Modules' modulecmd.tcl (the module tests)
[ -r /usr/share/lmod/lmod/init/bash ] || packages+=(lmod)   # Lmod (the module tests)
if ((${#packages[@]})); then
  echo "setup: installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# Debian's environment-modules conflicts with lmod: unpack it beside it (its modulecmd.tcl runs
# from any directory), as ParallelCluster's AMIs ship it and the module tests need both.
if [ ! -r /opt/environment-modules/usr/lib/x86_64-linux-gnu/modulecmd.tcl ] && ! dpkg -s environment-modules >/dev/null 2>&1; then
  echo "setup: unpacking environment-modules into /opt/environment-modules"
  work=$(mktemp -d)
  chmod 755 "$work"
  (cd "$work" && apt-get download environment-modules >/dev/null 2>&1)
  dpkg-deb -x "$work"/environment-modules_*.deb /opt/environment-modules
  rm -rf "$work"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

# BuildKit's buildx plugin: not in bookworm; trixie's package needs only libc6 >= 2.34. It comes
# through a private apt configuration built from this machine's own archive (nothing on the host's
# apt sources changes).
if ! [ -x /usr/libexec/docker/cli-plugins/docker-buildx ]; then
  echo "setup: installing docker-buildx from Debian trixie"
  .venv/bin/python -m cryostack.debian install docker-buildx --suite trixie
fi

# No systemd on these machines: start dockerd ourselves when nothing answers.
if ! docker info >/dev/null 2>&1; then
  log=/var/log/cryostack-dockerd.log
  echo "setup: starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see $log" >&2; exit 1; }
fi
echo "setup: ready (.venv/bin/invoke --list shows the tasks)"

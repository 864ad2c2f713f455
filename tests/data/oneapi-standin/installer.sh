#!/bin/sh
# Stand-in for Intel's oneAPI offline installers (l_*Kit_p_<version>_offline.sh), for cryostack's tests
# only: no Intel software is in it. Like the real ones it is a shell script with its payload appended
# and takes `-a` followed by the installer's own options (--silent, --eula accept, --install-dir DIR,
# --components A:B). It installs shims over Debian's GCC, Open MPI, FFTW and oneTBB in Intel's layout
# (setvars.sh, compiler/latest/bin/icx, mpi/latest/bin/mpiicpx, mkl/latest, tbb/latest); the Debian
# packages must be installed already (the toolkit's build_packages in the catalogue).
set -eu
say() { printf 'oneAPI installer (cryostack stand-in): %s\n' "$*" >&2; }
[ "${1:-}" = -a ] || { say "give -a before the installer's options, as Intel's offline installers take them"; exit 2; }
shift
silent=0 eula="" dir="" components=""
while [ $# -gt 0 ]; do
    case "$1" in
        -s|--silent) silent=1; shift ;;
        --eula) eula=${2:-}; shift 2 ;;
        --install-dir) dir=${2:-}; shift 2 ;;
        --components) components=${2:-}; shift 2 ;;
        --action) [ "${2:-}" = install ] || { say "only --action install is supported"; exit 2; }; shift 2 ;;
        --cli) shift ;;
        *) say "unknown option $1 (known: --silent, --eula accept, --install-dir DIR, --components A:B, --action install, --cli)"; exit 2 ;;
    esac
done
[ "$silent" = 1 ] || { say "only the silent install is supported: give --silent"; exit 2; }
[ "$eula" = accept ] || { say "the licence must be accepted: give --eula accept"; exit 2; }
case "$dir" in /*) ;; *) say "give --install-dir with an absolute path"; exit 2 ;; esac
for need in gcc:gcc g++:g++ mpicc:libopenmpi-dev mpirun:openmpi-bin; do
    command -v "${need%%:*}" >/dev/null || { say "${need%%:*} is missing: install Debian's ${need#*:} first"; exit 1; }
done
multiarch=$(gcc -print-multiarch)
for header in fftw3.h tbb/tbb.h; do
    [ -f "/usr/include/$header" ] || { say "/usr/include/$header is missing: install Debian's libfftw3-dev and libtbb-dev first"; exit 1; }
done

mkdir -p "$dir"
sed '1,/^__PAYLOAD__$/d' "$0" | tar -xzf - -C "$dir"
# Intel's libraries, stood in for by Debian's, where Intel's would be: MKL's FFTW3 interface is FFTW
# itself (headers and libraries; libmkl_rt.so is a linker script over them), oneTBB is Debian's, and
# GCC's OpenMP runtime stands where Intel's libiomp5 would. Copies, so that ldd finds them here first.
lib=/usr/lib/$multiarch
mkdir -p "$dir/mkl/latest/include/fftw" "$dir/mkl/latest/lib" "$dir/tbb/latest/include" "$dir/tbb/latest/lib" "$dir/compiler/latest/lib"
cp /usr/include/fftw3.h "$dir/mkl/latest/include/fftw/"
for name in fftw3 fftw3f fftw3_threads fftw3f_threads; do cp -L "$lib/lib$name.so.3" "$dir/mkl/latest/lib/"; done
printf '/* cryostack stand-in for MKL: FFTW through its own interface */\nINPUT(libfftw3.so.3 libfftw3f.so.3 libfftw3_threads.so.3 libfftw3f_threads.so.3)\n' > "$dir/mkl/latest/lib/libmkl_rt.so"
ln -s /usr/include/tbb /usr/include/oneapi "$dir/tbb/latest/include/"
for name in tbb.so.12 tbbmalloc.so.2; do cp -L "$lib/lib$name" "$dir/tbb/latest/lib/"; ln -s "lib$name" "$dir/tbb/latest/lib/lib${name%%.so*}.so"; done
cp -L "$(gcc -print-file-name=libgomp.so.1)" "$dir/compiler/latest/lib/"
ln -s icx "$dir/compiler/latest/bin/icpx"
ln -s mpiicx "$dir/mpi/latest/bin/mpiicpx"
[ -z "$components" ] || printf '%s\n' "$components" | tr ':' '\n' > "$dir/.standin-components"
say "installed in $dir${components:+ (components $components)}"
exit 0
__PAYLOAD__

# cryostack stand-in for oneAPI's setvars.sh (tests only): the environment the stand-in toolkit's
# compilers and libraries are found in, named as Intel's setvars.sh names it.
ONEAPI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ONEAPI_ROOT
export MKLROOT=$ONEAPI_ROOT/mkl/latest TBBROOT=$ONEAPI_ROOT/tbb/latest I_MPI_ROOT=$ONEAPI_ROOT/mpi/latest
export CMPLR_ROOT=$ONEAPI_ROOT/compiler/latest
export PATH=$I_MPI_ROOT/bin:$CMPLR_ROOT/bin:$PATH
export LD_LIBRARY_PATH=$MKLROOT/lib:$TBBROOT/lib:$CMPLR_ROOT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LIBRARY_PATH=$MKLROOT/lib:$TBBROOT/lib:$CMPLR_ROOT/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export CPATH=$MKLROOT/include:$TBBROOT/include${CPATH:+:$CPATH}
echo ":: cryostack stand-in oneAPI environment initialised (GCC, Open MPI, FFTW and oneTBB from Debian)"

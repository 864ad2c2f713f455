/* The fast tests' stand-in for a real package: prints its version, optionally uses OpenMP. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef WITH_MPI
#include <mpi.h>
#endif
#ifdef WITH_FFT
#include <fftw3.h>
#endif
#ifdef BROKEN
#error "deliberately broken: the keep-going test needs one image that fails to compile"
#endif

/* A loop the compiler vectorises: in 512-bit (zmm) registers only when built for AVX-512 with wide
   vectors preferred, which is how the oneAPI test sees that the stand-in icx translated Intel's options. */
__attribute__((noinline)) static void scale_add(int n, float a, const float *x, float *y) {
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hello %s\n", VERSION);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--whoami") == 0) {
        const char *image = getenv("CRYOSTACK_IMAGE");
        printf("image=%s\n", image ? image : "(unset)");
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--exit") == 0)  /* the exit code a wrapper must pass on */
        return atoi(argv[2]);
    if (argc > 1 && strcmp(argv[1], "--ppid") == 0) {  /* a wrapper that execs leaves no process between */
        printf("ppid=%ld\n", (long)getppid());
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--args") == 0) {  /* every further argument, hex-encoded */
        for (int i = 2; i < argc; i++) {
            for (const unsigned char *c = (const unsigned char *)argv[i]; *c; c++)
                printf("%02x", *c);
            printf("\n");
        }
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "--scale-add") == 0) {  /* sum of (1 + a*i) for i < 1000 */
        float x[1000], y[1000], a = (float)atof(argv[2]), sum = 0;
        for (int i = 0; i < 1000; i++) { x[i] = (float)i; y[i] = 1; }
        scale_add(1000, a, x, y);
        for (int i = 0; i < 1000; i++) sum += y[i];
        printf("scale-add=%.0f\n", sum);
        return 0;
    }
#ifdef WITH_FFT
    if (argc > 1 && strcmp(argv[1], "--fft") == 0) {  /* a cosine of one period over 8 samples: all in bin 1 */
        const double h = 0.70710678118654752;
        double in[8] = {1, h, 0, -h, -1, -h, 0, h};
        fftw_complex out[5];
        fftw_plan plan = fftw_plan_dft_r2c_1d(8, in, out, FFTW_ESTIMATE);
        fftw_execute(plan);
        for (int k = 0; k < 5; k++) printf("bin%d=%.3f%s", k, out[k][0] > -5e-4 && out[k][0] < 5e-4 ? 0.0 : out[k][0], k < 4 ? " " : "\n");
        fftw_destroy_plan(plan);
        return 0;
    }
#endif
#ifdef WITH_MPI
    if (argc > 1 && strcmp(argv[1], "--mpi") == 0) {  /* every rank reports; the sum of ranks proves they talked */
        int rank, size, sum;
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        const char *image = getenv("CRYOSTACK_IMAGE");
        printf("rank=%d size=%d sum=%d image=%s\n", rank, size, sum, image ? image : "(unset)");
        MPI_Finalize();
        return 0;
    }
#endif
#ifdef _OPENMP
    printf("threads: %d\n", omp_get_max_threads());
#endif
    for (int i = 1; i < argc; i++)
        printf("[%s]\n", argv[i]);
    return 0;
}

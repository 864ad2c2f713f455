/* The fast tests' stand-in for a real package: prints its version, optionally uses OpenMP. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef WITH_MPI
#include <mpi.h>
#endif
#ifdef BROKEN
#error "deliberately broken: the keep-going test needs one image that fails to compile"
#endif

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
    if (argc > 1 && strcmp(argv[1], "--args") == 0) {  /* every further argument, hex-encoded */
        for (int i = 2; i < argc; i++) {
            for (const unsigned char *c = (const unsigned char *)argv[i]; *c; c++)
                printf("%02x", *c);
            printf("\n");
        }
        return 0;
    }
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

/* threads.c: thread-count setup for OpenMP and OpenBLAS, and a monotonic clock. */
#include "core/threads.h"

#include <cblas.h>
#include <omp.h>
#include <time.h>

int sevo_threads_init(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    /* one level of threads: a loop inside a parallel region (a kernel inside the
     * generation of one of several samples in parallel) runs on its own thread */
    omp_set_max_active_levels(1);
    openblas_set_num_threads(n);
    return n;
}

double sevo_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

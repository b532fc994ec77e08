/* parallel.h: how a kernel splits a loop between threads, and when it does not.
 *
 * Why not just `#pragma omp parallel for if (work >= min)`: with the condition false,
 * libgomp still enters the region (a team of one), and inside an enclosing region, as
 * in generation, samples side by side on the threads (model/generate.c's policy_pool), every such
 * nested region allocates and frees a team: about 0.8 µs each (measured), a dozen per
 * layer per token, which was about 10% of the evaluation stage (perf: malloc_consolidate,
 * _int_free, memalign, futex). KERNEL_PARALLEL runs the loop directly, with no region
 * at all, when it is small or already inside a parallel region.
 *
 * KERNEL_PARALLEL(work, min, n, tid, i0, i1, body...) runs `body` once per thread with
 * [i0, i1) that thread's contiguous share of the n items (the split of schedule(static))
 * and tid its number, for scratch slices; or once, with [0, n) and tid 0. Items must be
 * independent: a kernel's results then do not depend on the split. */
#ifndef SEVO_KERNELS_PARALLEL_H
#define SEVO_KERNELS_PARALLEL_H

#include <omp.h>

/* Whether a loop of `work` units gets a parallel region: at least `min` units, more
 * than one thread to give it, and not inside a region already. */
static inline int kernel_fork(long work, long min) {
    return work >= min && !omp_in_parallel() && omp_get_max_threads() > 1;
}

/* This thread's share [*i0, *i1) of n items, as schedule(static) splits them. */
static inline void kernel_share(long n, long *i0, long *i1) {
    const long t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long q = n / nt, r = n % nt;
    *i0 = t * q + (t < r ? t : r);
    *i1 = *i0 + q + (t < r);
}

#define KERNEL_PARALLEL(work, min, n, tid, i0, i1, ...)                  \
    do {                                                                 \
        if (kernel_fork((long)(work), (long)(min))) {                    \
            _Pragma("omp parallel")                                      \
            {                                                            \
                long i0, i1;                                             \
                const int tid = omp_get_thread_num();                    \
                kernel_share((long)(n), &i0, &i1);                       \
                (void)tid;                                               \
                __VA_ARGS__;                                             \
            }                                                            \
        } else {                                                         \
            const long i0 = 0, i1 = (long)(n);                           \
            const int tid = 0;                                           \
            (void)tid;                                                   \
            __VA_ARGS__;                                                 \
        }                                                                \
    } while (0)

#endif

/* threads.h: one place that sets how many threads sevo's OpenMP loops and OpenBLAS use,
 * so that both share one pool of that size and never oversubscribe the cores. */
#ifndef SEVO_CORE_THREADS_H
#define SEVO_CORE_THREADS_H

/* n <= 0 means all available cores. Returns the number in use. */
int sevo_threads_init(int n);
double sevo_now(void); /* monotonic seconds */

#endif

/* rng.h: a small, fast, seedable random number generator (PCG32) with uniform,
 * normal and integer draws. Deterministic across platforms: the same seed gives the
 * same stream, which synth and training determinism rely on. */
#ifndef SEVO_CORE_RNG_H
#define SEVO_CORE_RNG_H

#include <stdint.h>

typedef struct sevo_rng {
    uint64_t state;
    uint64_t inc;
} sevo_rng;

void sevo_rng_seed(sevo_rng *r, uint64_t seed, uint64_t stream);
/* One generator of a family indexed by key (a sample's index): seeded with seed and key
 * mixed by SplitMix64's finaliser, so that nearby keys give unrelated generators
 * (nearby PCG streams alone are correlated). */
void sevo_rng_seed_keyed(sevo_rng *r, uint64_t seed, uint64_t key, uint64_t stream);
uint32_t sevo_rng_u32(sevo_rng *r);
/* Uniform in [0, 1) with 24 bits of precision (exactly representable as float). */
float sevo_rng_uniform(sevo_rng *r);
/* Uniform integer in [0, n), unbiased. n must be > 0. */
uint32_t sevo_rng_below(sevo_rng *r, uint32_t n);
/* Standard normal (Box-Muller, one value per call). */
float sevo_rng_normal(sevo_rng *r);
/* Fisher-Yates shuffle of an int array. */
void sevo_rng_shuffle(sevo_rng *r, int *a, int n);

#endif

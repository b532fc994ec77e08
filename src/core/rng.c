/* rng.c: PCG32 (O'Neill, "PCG: A Family of Simple Fast Space-Efficient Statistically
 * Good Algorithms for Random Number Generation"), XSH-RR output function. */
#include "core/rng.h"

#include <math.h>

void sevo_rng_seed(sevo_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0u;
    r->inc = (stream << 1u) | 1u;
    (void)sevo_rng_u32(r);
    r->state += seed;
    (void)sevo_rng_u32(r);
}

/* SplitMix64 finaliser (Steele, Lea & Flood): a bijection that spreads nearby inputs
 * over the whole 64-bit space. */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

void sevo_rng_seed_keyed(sevo_rng *r, uint64_t seed, uint64_t key, uint64_t stream) {
    sevo_rng_seed(r, splitmix64(seed ^ splitmix64(key)), stream);
}

uint32_t sevo_rng_u32(sevo_rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

float sevo_rng_uniform(sevo_rng *r) {
    return (float)(sevo_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

uint32_t sevo_rng_below(sevo_rng *r, uint32_t n) {
    /* Lemire's rejection: threshold = 2^32 mod n. */
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = sevo_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

float sevo_rng_normal(sevo_rng *r) {
    float u1 = sevo_rng_uniform(r);
    float u2 = sevo_rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

void sevo_rng_shuffle(sevo_rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)sevo_rng_below(r, (uint32_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

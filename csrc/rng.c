/* rng.c - the epoch shuffle: Fisher-Yates driven by Philox4x32-10 keyed by (seed, epoch). */
#include "rng.h"

void fnn_permutation(uint64_t seed, uint64_t epoch, int64_t *perm, size_t n) {
    uint32_t key[2];
    fnn_philox_key(seed, key);
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    for (size_t i = n; i-- > 1;) {
        /* draw j uniform in [0, i]: 64 random bits reduced modulo i+1 (bias below 2^-30 for any
         * n < 2^34); the counter is (i, stream, epoch) so the draw for i never depends on others */
        uint32_t c[4] = {(uint32_t)i, ((uint32_t)FNN_RNG_SHUFFLE << 24) | (uint32_t)((uint64_t)i >> 32 & 0xffffffu),
                         (uint32_t)epoch, (uint32_t)(epoch >> 32)};
        uint32_t r[4];
        fnn_philox4x32(c, key, r);
        uint64_t u = ((uint64_t)r[0] << 32) | r[1];
        size_t j = (size_t)(u % ((uint64_t)i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

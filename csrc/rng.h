/* rng.h - Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw
 * ("Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123's reference constants).
 *
 * A random block is a pure function of (counter, key): no state, so any element of any stream can
 * be drawn by any thread in any order and the result never depends on the thread count.
 * fastnn keys every draw with the model seed (64 bits = the two key words) and puts into the
 * counter what the draw is for:
 *   word 1, top byte: the stream (FNN_RNG_SHUFFLE, FNN_RNG_DROPOUT), low 24 bits: its sub-index
 *   (dropout: the layer) and high bits of the position;
 *   words 0, 2, 3: the position within the stream (see rng.c and net_t.h).
 */
#ifndef FNN_RNG_H
#define FNN_RNG_H

#include <stddef.h>
#include <stdint.h>

enum { FNN_RNG_SHUFFLE = 1, FNN_RNG_DROPOUT = 2 };

static inline void fnn_philox_round_(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k[0];
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = (uint32_t)p1;
    c[2] = n2;
    c[3] = (uint32_t)p0;
}

/* out = Philox4x32-10(ctr, key). */
static inline void fnn_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 9; r++) {
        fnn_philox_round_(c, k);
        k[0] += 0x9E3779B9u;
        k[1] += 0xBB67AE85u;
    }
    fnn_philox_round_(c, k);
    out[0] = c[0]; out[1] = c[1]; out[2] = c[2]; out[3] = c[3];
}

/* The Philox key of a 64-bit seed. */
static inline void fnn_philox_key(uint64_t seed, uint32_t key[2]) {
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
}

/* Dropout threshold: a unit is dropped when its 32-bit draw is below it; P(drop) = thr / 2^32. */
static inline uint64_t fnn_dropout_threshold(double p) {
    if (!(p > 0)) return 0;
    if (p >= 1) return (uint64_t)1 << 32;
    return (uint64_t)(p * 4294967296.0 + 0.5);
}

/* The dropout draws of elements [4*blk, 4*blk+4) of layer `layer` at training step `step`. */
static inline void fnn_dropout_block(const uint32_t key[2], uint64_t step, uint32_t layer, uint64_t blk,
                                     uint32_t out[4]) {
    /* word 1: stream | element-block bits 32..39 | layer (16 bits): 2^42 elements per layer and step */
    uint32_t c[4] = {(uint32_t)blk,
                     ((uint32_t)FNN_RNG_DROPOUT << 24) | ((uint32_t)(blk >> 32) & 0xffu) << 16 | (layer & 0xffffu),
                     (uint32_t)step, (uint32_t)(step >> 32)};
    fnn_philox4x32(c, key, out);
}

/* perm[0..n) = a uniformly random permutation of 0..n-1 (Fisher-Yates), a function of (seed, epoch)
 * only.  Serial: O(n), about a millisecond per 10^5 rows. */
void fnn_permutation(uint64_t seed, uint64_t epoch, int64_t *perm, size_t n);

#endif /* FNN_RNG_H */

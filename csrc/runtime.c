/* runtime.c - CPU feature detection, SIMD level dispatch, thread count, errors, aligned memory.
 *
 * The SIMD level starts at the highest the CPU runs (or FASTNN_SIMD=generic|avx2|avx512 if that is
 * not higher) the first time any kernel asks for it.  The thread count is a process-wide setting
 * that each parallel region reads and passes down explicitly; OMP_NUM_THREADS sets its default.
 */
#include "fnn_impl.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- errors ---------------------------------------------------------------- */
const char *fnn_strerror(int code) {
    switch (code) {
    case FNN_OK: return "success";
    case FNN_ERR_NOMEM: return "out of memory";
    case FNN_ERR_ARG: return "invalid argument";
    case FNN_ERR_IO: return "I/O error";
    case FNN_ERR_FORMAT: return "malformed model file";
    case FNN_ERR_UNSUPPORTED: return "unsupported model file";
    case FNN_ERR_NONFINITE: return "non-finite value";
    case FNN_ERR_BUSY: return "model in use by another thread";
    default: return "unknown error";
    }
}

/* ---- CPU features ---------------------------------------------------------- */
int fnn_cpu_has_avx2(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int fnn_cpu_has_avx512(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return fnn_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int fnn_simd_max(void) {
    if (fnn_cpu_has_avx512()) return FNN_SIMD_AVX512;
    if (fnn_cpu_has_avx2()) return FNN_SIMD_AVX2;
    return FNN_SIMD_GENERIC;
}

const char *fnn_simd_name(int level) {
    switch (level) {
    case FNN_SIMD_AVX512: return "avx512";
    case FNN_SIMD_AVX2: return "avx2";
    case FNN_SIMD_GENERIC: return "generic";
    default: return "unknown";
    }
}

static atomic_int g_simd = -1;

static int simd_from_env(void) {
    int level = fnn_simd_max();
    const char *s = getenv("FASTNN_SIMD");
    if (s && *s) {
        for (int l = FNN_SIMD_GENERIC; l <= FNN_SIMD_AVX512; l++)
            if (strcmp(s, fnn_simd_name(l)) == 0 && l < level) level = l;
    }
    return level;
}

int fnn_simd_level(void) {
    int l = atomic_load(&g_simd);
    if (l < 0) {
        int want = simd_from_env(), expect = -1;
        atomic_compare_exchange_strong(&g_simd, &expect, want);
        l = atomic_load(&g_simd);
    }
    return l;
}

int fnn_set_simd_level(int level) {
    if (level < FNN_SIMD_GENERIC || level > fnn_simd_max()) return FNN_ERR_ARG;
    atomic_store(&g_simd, level);
    return FNN_OK;
}

const fnn_sgemm_kernel *fnn_sgemm_kernel_active(void) {
    switch (fnn_simd_level()) {
#if defined(__x86_64__)
    case FNN_SIMD_AVX512: return &fnn_sgemm_kernel_avx512;
    case FNN_SIMD_AVX2: return &fnn_sgemm_kernel_avx2;
#endif
    default: return &fnn_sgemm_kernel_ref;
    }
}

const fnn_dgemm_kernel *fnn_dgemm_kernel_active(void) {
    switch (fnn_simd_level()) {
#if defined(__x86_64__)
    case FNN_SIMD_AVX512: return &fnn_dgemm_kernel_avx512;
    case FNN_SIMD_AVX2: return &fnn_dgemm_kernel_avx2;
#endif
    default: return &fnn_dgemm_kernel_ref;
    }
}

/* ---- threads ----------------------------------------------------------------- */
static atomic_int g_threads = 0; /* 0 = not set: the OpenMP default */

int fnn_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void fnn_set_num_threads(int n) { atomic_store(&g_threads, n < 1 ? 0 : n); }

int fnn_get_num_threads(void) {
#ifdef _OPENMP
    int n = atomic_load(&g_threads);
    return n > 0 ? n : omp_get_max_threads();
#else
    return 1;
#endif
}

int fnn_threads_for(size_t work, size_t grain, int nt) {
    size_t by_work = grain ? work / grain : (size_t)nt;
    if (nt < 1) return 1;
    if (by_work < (size_t)nt) nt = (int)by_work;
    return nt < 1 ? 1 : nt;
}

/* ---- aligned memory ----------------------------------------------------------- */
void *fnn_aligned_alloc(size_t bytes) {
    if (bytes == 0) bytes = FNN_ALIGN;
    if (bytes > SIZE_MAX - FNN_ALIGN) return NULL;
    size_t rounded = (bytes + FNN_ALIGN - 1) / FNN_ALIGN * FNN_ALIGN;
    return aligned_alloc(FNN_ALIGN, rounded);
}

void fnn_aligned_free(void *p) { free(p); }

/* ---- per-thread buffers ------------------------------------------------------- */
/* One key for all slots: each calling thread owns FNN_TBUF__COUNT buffers that only grow (freed
 * when the thread ends), so that calls repeating the same sizes allocate nothing. */
typedef struct { void *p; size_t bytes; } tbuf;
static tss_t tbuf_key;
static once_flag tbuf_once = ONCE_FLAG_INIT;
static int tbuf_ok;

static void tbuf_free(void *v) {
    tbuf *b = v;
    if (!b) return;
    for (int i = 0; i < FNN_TBUF__COUNT; i++) fnn_aligned_free(b[i].p);
    free(b);
}
static void tbuf_init(void) { tbuf_ok = tss_create(&tbuf_key, tbuf_free) == thrd_success; }

void *fnn_thread_buffer(int slot, size_t bytes) {
    if (slot < 0 || slot >= FNN_TBUF__COUNT) return NULL;
    call_once(&tbuf_once, tbuf_init);
    if (!tbuf_ok) return NULL;
    tbuf *b = tss_get(tbuf_key);
    if (!b) {
        b = calloc(FNN_TBUF__COUNT, sizeof *b);
        if (!b || tss_set(tbuf_key, b) != thrd_success) { free(b); return NULL; }
    }
    if (b[slot].bytes < bytes) {
        fnn_aligned_free(b[slot].p);
        b[slot].p = fnn_aligned_alloc(bytes);
        b[slot].bytes = b[slot].p ? bytes : 0;
    }
    return b[slot].p;
}

/* runtime.c - CPU feature detection, SIMD level dispatch, thread count, errors, aligned memory.
 *
 * The SIMD level starts at the highest the CPU runs (or FASTNN_SIMD=generic|avx2|avx512 if that is
 * not higher) the first time any kernel asks for it.  The thread count is a process-wide setting
 * that each parallel region reads and passes down explicitly; OMP_NUM_THREADS sets its default.
 * It is capped at fnn_max_threads(), and each calling thread gets no more threads than it was seen
 * to be able to start (see fnn_get_num_threads): libgomp ends the process when it cannot create a
 * thread, so that must never be left to it.
 */
#include "fnn_impl.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <ctype.h>
#define FNN_PROBE_THREADS 1
#endif
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

/* The int8 and bf16 extensions of AVX-512, used at the avx512 level when present (lowp.h). */
int fnn_cpu_has_avx512_vnni(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    return fnn_cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

int fnn_cpu_has_avx512_bf16(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    return fnn_cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
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

const fnn_vmath_kernel *fnn_vmath_kernel_active(void) {
    switch (fnn_simd_level()) {
#if defined(__x86_64__)
    case FNN_SIMD_AVX512: return &fnn_vmath_kernel_avx512;
    case FNN_SIMD_AVX2: return &fnn_vmath_kernel_avx2;
#endif
    default: return &fnn_vmath_kernel_ref;
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

/* The bound on every thread count: 4 per processor this process may run on (more only wait for a
 * core), and never more than FNN_THREADS_CAP. */
#define FNN_THREADS_CAP 1024
int fnn_max_threads(void) {
#ifdef _OPENMP
    int procs = omp_get_num_procs();
    if (procs < 1) procs = 1;
    return procs > FNN_THREADS_CAP / 4 ? FNN_THREADS_CAP : 4 * procs;
#else
    return 1;
#endif
}

void fnn_set_num_threads(int n) {
    int cap = fnn_max_threads();
    atomic_store(&g_threads, n < 1 ? 0 : n > cap ? cap : n);
}

#ifdef FNN_PROBE_THREADS
/* The stack size libgomp gives its threads: OMP_STACKSIZE or GOMP_STACKSIZE (a number with an
 * optional B, K, M or G suffix, K by default), else the default of a new thread (0 here). */
static size_t omp_stacksize(void) {
    const char *names[] = {"OMP_STACKSIZE", "GOMP_STACKSIZE"};
    for (int i = 0; i < 2; i++) {
        const char *s = getenv(names[i]);
        if (!s) continue;
        while (isspace((unsigned char)*s)) s++;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s) continue;
        while (isspace((unsigned char)*end)) end++;
        int shift = 10;
        switch (tolower((unsigned char)*end)) {
        case 'b': shift = 0; break;
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: break;
        }
        if (v > (SIZE_MAX >> shift)) return 0;
        return (size_t)v << shift;
    }
    return 0;
}

static mtx_t probe_gate;
static once_flag probe_once = ONCE_FLAG_INIT;
static int probe_ok;
static void probe_init(void) { probe_ok = mtx_init(&probe_gate, mtx_plain) == thrd_success; }
static void *probe_wait(void *arg) {
    (void)arg;
    mtx_lock(&probe_gate); /* held by the prober until every thread exists */
    mtx_unlock(&probe_gate);
    return NULL;
}

/* How many threads (this one included, at most `want`) this thread can run at once: start want - 1
 * threads with libgomp's stack size, all alive together, then let them end.  Where memory (an
 * RLIMIT_AS, a cgroup) or a thread limit allows fewer, that many. */
static int probe_threads(int want) {
    call_once(&probe_once, probe_init);
    if (!probe_ok || want <= 1) return want < 1 ? 1 : want;
    pthread_t *t = malloc((size_t)(want - 1) * sizeof *t);
    if (!t) return 1;
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0;
    size_t stack = omp_stacksize();
    if (have_attr && stack) pthread_attr_setstacksize(&attr, stack);
    int made = 0;
    mtx_lock(&probe_gate);
    while (made < want - 1 && pthread_create(&t[made], have_attr ? &attr : NULL, probe_wait, NULL) == 0) made++;
    mtx_unlock(&probe_gate);
    for (int i = 0; i < made; i++) pthread_join(t[i], NULL);
    if (have_attr) pthread_attr_destroy(&attr);
    free(t);
    return made + 1;
}

/* Per calling thread (libgomp keeps a pool of workers per thread that starts parallel regions): the
 * count last probed for and what the probe allowed. */
static _Thread_local int probed_for, probed_ok;
#endif

int fnn_get_num_threads(void) {
#ifdef _OPENMP
    int n = atomic_load(&g_threads);
    if (n <= 0) {
        n = omp_get_max_threads();
        int cap = fnn_max_threads();
        if (n > cap) n = cap;
    }
#ifdef FNN_PROBE_THREADS
    if (n > 1 && n != probed_for) {
        probed_ok = probe_threads(n);
        probed_for = n;
    }
    if (n > 1 && probed_ok < n) n = probed_ok;
#endif
    return n < 1 ? 1 : n;
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

/* ---- the thread-count governor (fnn_impl.h) --------------------------------------------------- */
static atomic_int g_adaptive = 1;
void fnn_set_adaptive_threads(int on) { atomic_store(&g_adaptive, on != 0); }
int  fnn_get_adaptive_threads(void) { return atomic_load(&g_adaptive); }

static double now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A window closes once its steps took this long: long enough to span a scheduler time slice or two,
 * short next to an epoch.  Probes are shorter: they only have to tell a clear difference. */
#define FNN_GOV_WINDOW 0.01
#define FNN_GOV_PROBE 0.005
#define FNN_GOV_FIRST 1      /* windows at the full count before the first probe */
#define FNN_GOV_GAP0 4       /* windows between probes after a change */
#define FNN_GOV_GAPMAX 64    /* ... doubling up to this (about 0.64 s) while probes lose */
#define FNN_GOV_GAPMAX_DOWN 256 /* ... or this (2.56 s) for probes on fewer threads, which a neighbour's
                                 * arrival brings forward anyway (FNN_GOV_SHIFT): each costs its threads'
                                 * wake-up on the way back (FNN_GOV_WARM) */
#define FNN_GOV_MARGIN 0.9   /* a probe must take at most this fraction of the home level's time */
#define FNN_GOV_SHIFT 1.5    /* a home window this many times the estimate brings the next probe forward */
#define FNN_GOV_WARM 0.02    /* seconds on a larger count before its steps are measured (its threads wake) */
#define FNN_GOV_PAUSE 0.05   /* a gap between steps this long lets the threads sleep as well */
#define FNN_GOV_ONE_STEP 1e-9 /* a warm-up that the first step ends */

static int count_(int max, int level) { /* the thread count of a level */
    int c = max;
    for (int i = 0; i < level && c > 1; i++) c = (c + 1) / 2;
    return c;
}

int fnn_gov_levels(int max) {
    int n = 1;
    while (count_(max, n - 1) > 1 && n < FNN_GOV_LEVELS) n++;
    return n;
}

/* `on`: the switch, read once by the caller, so that a step never starts governed without a time */
static int begin_(fnn_governor *g, int max, int on, double now) {
    if (max <= 1 || !on) {
        g->max = 0; /* start afresh when it is next asked for more than one thread */
        return max < 1 ? 1 : max;
    }
    if (g->max != max) {
        memset(g, 0, sizeof *g);
        g->max = max;
        g->levels = fnn_gov_levels(max);
        g->wait = FNN_GOV_FIRST;
        g->gap = FNN_GOV_GAP0;
        g->down = 1;
        g->warm = FNN_GOV_WARM; /* first touches of memory, threads starting: see set_count_ */
    } else if (g->cur + 1 < g->levels && now - g->last > FNN_GOV_PAUSE && g->warm <= 0)
        g->warm = FNN_GOV_WARM; /* steps resume after a pause (another fit, a callback): see set_count_ */
    g->start = now;
    return count_(max, g->cur);
}

int fnn_gov_begin(fnn_governor *g, int max) {
    const int on = max > 1 && atomic_load(&g_adaptive);
    return begin_(g, max, on, on ? now_() : 0);
}

int fnn_gov_begin_at(fnn_governor *g, int max, double now) { return begin_(g, max, atomic_load(&g_adaptive), now); }

void fnn_gov_end(fnn_governor *g, double work) {
    if (g->max > 1) fnn_gov_end_at(g, work, now_());
}

/* Runs the next steps on `level`.  Their first step is not measured, and on a larger count neither are
 * those of its first FNN_GOV_WARM seconds: threads that slept while fewer ran take a while to come back
 * up to speed (measured on a 2-vCPU VM: after a second on one thread, the first 20 ms or so of 2-thread
 * steps ran at a half to a third of their rate, slower than one thread), and a probe or a home window
 * that counted them would judge the larger count by its wake-up. */
static void set_count_(fnn_governor *g, int level) {
    if (level != g->cur) g->warm = level < g->cur ? FNN_GOV_WARM : FNN_GOV_ONE_STEP;
    g->cur = level;
}

void fnn_gov_end_at(fnn_governor *g, double work, double now) {
    if (g->max <= 1 || !(work > 0)) return;
    double dt = now - g->start;
    g->last = now;
    if (g->warm > 0) { /* the first steps, or the count just changed: see set_count_ */
        g->warm -= dt > 0 ? dt : 0;
        return;
    }
    g->spent += dt > 0 ? dt : 0;
    g->work += work;
    const int probing = g->cur != g->home;
    if (g->spent < (probing ? FNN_GOV_PROBE : FNN_GOV_WINDOW)) return;
    const double rate = g->spent / g->work;
    g->spent = g->work = 0;
    if (probing) { /* the probe's verdict */
        g->est[g->cur] = rate;
        if (rate < FNN_GOV_MARGIN * g->est[g->home]) {
            g->home = g->cur;
            g->gap = FNN_GOV_GAP0;
        } else { /* back off: twice as long, four times after a clear loss */
            const int grow = rate > FNN_GOV_SHIFT * g->est[g->home] ? 4 : 2;
            const int cap = g->cur > g->home ? FNN_GOV_GAPMAX_DOWN : FNN_GOV_GAPMAX;
            g->gap = g->gap * grow > cap ? cap : g->gap * grow;
        }
        set_count_(g, g->home);
        g->wait = g->gap;
        return;
    }
    const double old = g->est[g->home];
    g->est[g->home] = old > 0 ? 0.5 * old + 0.5 * rate : rate;
    if (old > 0 && rate > FNN_GOV_SHIFT * old && g->wait > 1) g->wait = 1; /* the machine changed: look around */
    if (--g->wait > 0) return;
    const int lower = g->home + 1 < g->levels, higher = g->home > 0; /* fewer threads / more */
    if (!lower && !higher) {
        g->wait = FNN_GOV_GAPMAX;
        return;
    }
    int down = lower && (g->down || !higher);
    g->down = !g->down;
    set_count_(g, down ? g->home + 1 : g->home - 1);
}

/* ---- an idle team (fnn_impl.h) ------------------------------------------------------------- */
#define FNN_TEAM_IDLE 1e-4   /* seconds without a region after which libgomp's threads may be asleep */
#define FNN_TEAM_RECHECK 16  /* every this many products run on one thread, one runs on the team */
#define FNN_TEAM_LATE_MAX 1e-3 /* a measured start counts for at most this */

static _Thread_local double team_end_;       /* when this thread's last parallel region ended */
static _Thread_local double team_wake_;      /* mean cost of starting its team after idling (s), 0 = none */
static _Thread_local int team_steady_;       /* > 0 inside training steps */
static _Thread_local unsigned team_skips_;   /* products run on one thread since the last recheck */
static _Thread_local unsigned long team_serial_; /* ... in all (the test hook reads it) */

int fnn_team_begin(fnn_team *t, int nt, double serial_seconds) {
    t->cold = 0;
    t->last = 0;
    if (nt <= 1) return nt;
    t->t0 = now_();
    /* the thread's first region starts its team: that is not a wake-up */
    if (team_steady_ > 0 || team_end_ == 0 || t->t0 - team_end_ <= FNN_TEAM_IDLE) return nt;
    t->cold = 1;
    if (serial_seconds < team_wake_ && ++team_skips_ < FNN_TEAM_RECHECK) {
        team_serial_++;
        return 1;
    }
    team_skips_ = 0;
    return nt;
}

void fnn_team_arrive(fnn_team *t) {
#ifdef _OPENMP
    if (!t->cold || omp_get_thread_num() == 0) return;
    long long at = (long long)(now_() * 1e9), seen = __atomic_load_n(&t->last, __ATOMIC_RELAXED);
    while (seen < at && !__atomic_compare_exchange_n(&t->last, &seen, at, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
#else
    (void)t;
#endif
}

void fnn_team_end(fnn_team *t, int nt) {
    if (nt <= 1) return; /* ran on this thread alone: the team is as idle as it was */
    const double end = now_();
    if (t->cold) {
        const long long last = __atomic_load_n(&t->last, __ATOMIC_RELAXED);
        double late = last > 0 ? (double)last * 1e-9 - t->t0 : 0;
        late = late < 0 ? 0 : late > FNN_TEAM_LATE_MAX ? FNN_TEAM_LATE_MAX : late; /* a preemption, threads started */
        team_wake_ = team_wake_ > 0 ? 0.5 * (team_wake_ + late) : late;
    }
    team_end_ = end;
}

void fnn_team_touch(void) { team_end_ = now_(); }

void fnn_team_steady(int on) { team_steady_ += on ? 1 : -1; }

void fnn_team_state(double *wake, unsigned long *serial, double set_wake) {
    if (set_wake >= 0) {
        team_wake_ = set_wake;
        team_skips_ = 0;
    }
    if (wake) *wake = team_wake_;
    if (serial) *serial = team_serial_;
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

/* fuzz_reader.c - feed files to the model-file reader (fnn_model_load_buffer) under the sanitizers.
 *
 * Every input must end in a clean error code or a model that then predicts; AddressSanitizer and
 * UBSan abort the run on any out-of-bounds access, leak or undefined behaviour.
 *
 *   make -C csrc fuzz                                  # builds csrc/build-asan/fuzz_reader
 *   csrc/build-asan/fuzz_reader CORPUS_DIR_OR_FILE...  # prints "N inputs: K loaded, E rejected"
 *
 * tests/test_io_fuzz.py writes a corpus of mutated model files and runs this.  Built with
 * -DFNN_LIBFUZZER (and -fsanitize=fuzzer, clang) the same file is a libFuzzer target instead:
 * `make -C csrc libfuzzer`, or `bash tools/fuzz_reader.sh [RUNS]` (seeds and dictionary from
 * fuzz_seeds.py beside this file).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fastnn.h"

static size_t n_inputs, n_loaded, n_rejected;

/* Load one input; if it loads, predict two rows (zeros, then ones) to exercise the model. */
static int one_input(const unsigned char *data, size_t len) {
    fnn_model *m = NULL;
    int rc = fnn_model_load_buffer(data, len, &m);
    n_inputs++;
    if (rc) {
        if (m || rc < 0 || rc >= FNN_ERR__COUNT || !fnn_last_error_detail()[0]) {
            fprintf(stderr, "fuzz_reader: bad failure (rc %d, model %p, detail \"%s\")\n", rc, (void *)m,
                    fnn_last_error_detail());
            abort();
        }
        n_rejected++;
        return 0;
    }
    n_loaded++;
    size_t ni = fnn_model_n_inputs(m), no = fnn_model_n_outputs(m);
    if (ni <= ((size_t)1 << 20) && no <= ((size_t)1 << 20)) { /* keep huge (valid) models quick */
        float *x = calloc(2 * ni, sizeof *x), *y = malloc(2 * no * sizeof *y);
        if (x && y) {
            for (size_t i = 0; i < ni; i++) x[ni + i] = 1;
            if (fnn_model_predict(m, x, 2, y) != FNN_OK) abort();
        }
        free(x);
        free(y);
    }
    fnn_model_free(m);
    return 0;
}

#ifdef FNN_LIBFUZZER
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) { return one_input(data, len); }
#else
static int run_file(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) { perror(path); return 1; }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); buf = NULL; }
            buf = nb;
        }
    }
    fclose(fp);
    if (!buf) { fprintf(stderr, "%s: out of memory\n", path); return 1; }
    /* an exact-size copy, so that ASan catches a read even one byte past the end */
    unsigned char *exact = malloc(len ? len : 1);
    if (!exact) { free(buf); return 1; }
    memcpy(exact, buf, len);
    free(buf);
    one_input(exact, len);
    free(exact);
    return 0;
}

static int run_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { perror(path); return 1; }
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    if (!d) { perror(path); return 1; }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) { rc = 1; break; }
        snprintf(p, n, "%s/%s", path, e->d_name);
        rc |= run_path(p);
        free(p);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_reader CORPUS_DIR_OR_FILE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) rc |= run_path(argv[i]);
    printf("%zu inputs: %zu loaded, %zu rejected\n", n_inputs, n_loaded, n_rejected);
    return rc;
}
#endif

/* check.c - input scans used by the Python boundary: are all values finite?  Integer tests on the
 * exponent bits, so the loop vectorises without reassociating floating-point arithmetic; float arrays
 * through the active vector-math kernel (kernels/vmath_t.h). */
#include "fnn_impl.h"

#include <string.h>

int fnn_sall_finite(const float *x, size_t n) { return fnn_vmath_kernel_active()->all_finite(x, n); }

int fnn_dall_finite(const double *x, size_t n) {
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
    }
    return !bad;
}

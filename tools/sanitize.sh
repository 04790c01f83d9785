#!/usr/bin/env bash
# Build fastnn (the extension and csrc/) with AddressSanitizer + UndefinedBehaviorSanitizer in a scratch
# copy of this checkout and run the test suite under it.  Any sanitizer report fails the run.
# CI (.ci/run) runs the whole suite this way: about 13 minutes on 2 cores (1 to 2 of them the build).
# Committed files only: the copy is made from `git ls-files`.
#   bash tools/sanitize.sh                 # whole suite
#   bash tools/sanitize.sh tests/test_gemm.py -k relu    # pytest arguments
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
git ls-files -z | xargs -0 -I{} cp --parents {} "$work"/
cd "$work"
FASTNN_SANITIZE=1 python setup.py -q build_ext --inplace >build.log 2>&1 || { cat build.log; exit 1; }
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
# Python's own allocations are not instrumented and it never frees some at exit: leaks are not
# checked here (see the leak test); everything else aborts the run on the first report.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export FASTNN_SANITIZED=1
LD_PRELOAD="$asan $ubsan" python -m pytest -q -p no:cacheprovider -x "${@:-tests}"

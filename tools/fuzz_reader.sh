#!/usr/bin/env bash
# Coverage-guided fuzzing of the model-file reader (csrc/io.c, through fnn_model_load_buffer and a
# predict on every model that loads) with libFuzzer under AddressSanitizer + UBSan.
#   bash tools/fuzz_reader.sh                  # 100000 inputs (a minute or two on 2 cores)
#   bash tools/fuzz_reader.sh 1000000 -jobs=2  # more inputs; further arguments go to libFuzzer
# Needs clang with libFuzzer (Debian: apt-get install clang-14 libclang-rt-14-dev).  Any crash, leak,
# sanitizer report or libFuzzer out-of-memory (the reader allocating for sizes the file does not
# back) stops the run with a reproducer in $FUZZ_WORK (default: a temporary directory, kept on failure).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-100000}
shift || true
cc=${FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}
[ -n "$cc" ] || { echo "fuzz_reader.sh: no clang found (set FUZZ_CC)" >&2; exit 2; }
work=${FUZZ_WORK:-$(mktemp -d)}
mkdir -p "$work/corpus"
make -s -C "$root/csrc" libfuzzer FUZZ_CC="$cc" FUZZ_BUILD="$work/build" >/dev/null
python3 "$root/csrc/tests/fuzz_seeds.py" "$work/seeds" "$work/reader.dict"
cd "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# -rss_limit_mb/-malloc_limit_mb: a file of at most max_len bytes must never make the reader ask for
# hundreds of megabytes.
set +e
"$work/build/fuzz_reader" -runs="$runs" -max_len=4096 -rss_limit_mb=1024 -malloc_limit_mb=256 \
    -dict="$work/reader.dict" -print_final_stats=1 "$@" corpus seeds >fuzz.log 2>&1
status=$?
set -e
grep -E "INITED|DONE|^Done|ERROR|SUMMARY|stat::number_of_executed_units" fuzz.log || true
if [ "$status" -ne 0 ]; then
    echo "fuzz_reader.sh: libFuzzer failed (status $status); log and reproducer in $work" >&2
    exit "$status"
fi
echo "corpus: $(ls corpus | wc -l) files in $work/corpus"
[ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"

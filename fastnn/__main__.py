"""The fastnn command: `python -m fastnn info|demo`."""
import argparse
import sys
import time


def cmd_info(args):
    import fastnn as fnn

    for key, value in fnn.build_info().items():
        print(f"{key}: {value}")
    return 0


def cmd_demo(args):
    import numpy as np

    import fastnn as fnn

    print(f"fastnn {fnn.__version__}: simd={fnn.build_info()['simd']} openmp={fnn.build_info()['openmp']} "
          f"threads={fnn.get_num_threads()}")
    rng = np.random.default_rng(0)
    for m, n, k in ((128, 512, 784), (1024, 1024, 1024)):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        got = fnn.ops.gemm(a, b)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        rates = []
        for fn in (lambda: fnn.ops.gemm(a, b, check_finite=False), lambda: a @ b):
            fn()
            t0 = time.perf_counter()
            reps = 0
            while time.perf_counter() - t0 < 0.3:
                fn()
                reps += 1
            rates.append(2.0 * m * n * k * reps / (time.perf_counter() - t0) / 1e9)
        print(f"gemm {m}x{n}x{k} float32: max rel. error {err:.1e}; fastnn {rates[0]:.1f} GFLOP/s, "
              f"numpy {rates[1]:.1f} GFLOP/s")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn: dense neural networks on the CPU")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, SIMD level, OpenMP, threads, compiler").set_defaults(fn=cmd_info)
    sub.add_parser("demo", help="a short run on built-in data").set_defaults(fn=cmd_demo)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

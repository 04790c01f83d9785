"""Build of fastnn: one Cython extension (fastnn._core) compiled together with the C sources of csrc/.

Environment switches (all optional):
  FASTNN_NO_OPENMP=1   build without OpenMP even if the compiler has it (serial kernels)
  FASTNN_SANITIZE=1    build with -fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
OPENMP_TEST = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n > 0 && omp_get_max_threads() > 0);
    return 0;
}
"""


def openmp_flags(compiler):
    """Compile and run a tiny OpenMP program with `compiler`; return (cflags, ldflags) or None."""
    if os.environ.get("FASTNN_NO_OPENMP") == "1" or sys.platform == "win32":
        return None
    cc = compiler.compiler_so[0]
    for flag in ("-fopenmp", "-Xpreprocessor -fopenmp"):
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "t.c")
            exe = os.path.join(tmp, "t")
            with open(src, "w") as f:
                f.write(OPENMP_TEST)
            cmd = [cc] + flag.split() + [src, "-o", exe] + ["-lomp" if "Xpreprocessor" in flag else "-fopenmp"]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
                out = subprocess.run([exe], check=True, capture_output=True, text=True, timeout=60).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            if out.strip() == "1":
                return flag.split(), (["-lomp"] if "Xpreprocessor" in flag else ["-fopenmp"])
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        omp = openmp_flags(self.compiler)
        cflags = ["-O3", "-g0", "-std=gnu11", "-ffp-contract=fast", "-fno-math-errno", "-fvisibility=hidden",
                  "-Wall", "-Wno-unused-function", "-Wno-unknown-pragmas"]
        ldflags = []
        if os.environ.get("FASTNN_SANITIZE") == "1":
            cflags = [f for f in cflags if f not in ("-O3", "-g0")] + ["-O1", "-g", "-fsanitize=address,undefined",
                                                          "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
            ldflags += ["-fsanitize=address,undefined"]
        if omp:
            cflags += omp[0]
            ldflags += omp[1]
        for ext in self.extensions:
            ext.extra_compile_args = cflags
            ext.extra_link_args = ldflags
            ext.define_macros = list(ext.define_macros or []) + [("FASTNN_BUILD_OPENMP", "1" if omp else "0")]
        # The .pyx is C too: compile it with the same flags but keep Cython's own warnings quiet.
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    csrc = sorted(glob.glob("csrc/*.c")) + sorted(glob.glob("csrc/kernels/*.c"))
    # depends: an edited header (a *_t.h body included by a .c file) or .pxi rebuilds the extension too
    headers = sorted(glob.glob("csrc/*.h")) + sorted(glob.glob("csrc/kernels/*.h")) + sorted(glob.glob("fastnn/*.pxi"))
    ext = Extension("fastnn._core", ["fastnn/_core.pyx"] + csrc, include_dirs=["csrc"], depends=headers)
    return cythonize([ext], language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False,
        "embedsignature": True,
    })


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})

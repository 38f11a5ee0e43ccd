"""Build step: copy the libws shared library (stripped) into the package
(libws/_lib/), and compile libws/_speedups.c, libws.asyncio's per-message
path in C (the limited API of Python 3.8: one abi3 module for every
CPython >= 3.8; it needs Python's headers, e.g. Debian's python3-dev, and
a C compiler). The extension is optional: when it cannot be compiled the
build says so and goes on, and libws.asyncio does the same work through
ctypes. The wheel is platform-specific: cp38-abi3-<platform> with the
extension, py3-none-<platform> without; `tools/build-wheel` turns it into
a manylinux wheel with auditwheel. $LIBWS_NO_SPEEDUPS=1 builds without it.

Where the library comes from, first match wins:
  1. $LIBWS_LIBRARY (a path to libws.so);
  2. $CARGO_TARGET_DIR/release/libws.so (when that variable is set);
  3. ../../target/release/libws.so (the checkout's `cargo build --release`).

Without one the build stops at once, with one line, before anything is
written; build/ and *.egg-info go to a temporary directory, never into the
source tree. $LIBWS_NO_STRIP=1 keeps the library's symbols.

All metadata lives in pyproject.toml.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Distribution, Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 with the wheel package
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LIBNAME = {"darwin": "libws.dylib", "win32": "ws.dll"}.get(sys.platform, "libws.so")


def find_library():
    env = os.environ.get("LIBWS_LIBRARY")
    if env:
        candidates = [Path(env)]
    else:
        candidates = []
        tgt = os.environ.get("CARGO_TARGET_DIR")
        if tgt:
            t = Path(tgt)
            candidates.append((t if t.is_absolute() else REPO / t) / "release" / LIBNAME)
        candidates.append(REPO / "target" / "release" / LIBNAME)
    for c in candidates:
        if c.is_file():
            return c
    return None


LIBRARY = find_library()
if LIBRARY is None:
    # One line, and nothing written yet (pip prints it as the cause).
    sys.exit(
        f"libws: no {LIBNAME} to package (looked for $LIBWS_LIBRARY, then target/release/): "
        "run `cargo build --release` at the repository root first, or set LIBWS_LIBRARY"
    )

# build/ and *.egg-info in a temporary directory, not the source tree.
SCRATCH = tempfile.mkdtemp(prefix="libws-python-build-")
atexit.register(shutil.rmtree, SCRATCH, True)


class BuildPyWithLibrary(build_py):
    """build_py that also copies libws.so (stripped) into libws/_lib/."""

    def run(self):
        super().run()
        dst = Path(self.build_lib) / "libws" / "_lib" / LIBNAME
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(LIBRARY, dst)
        strip = shutil.which("strip")
        if os.environ.get("LIBWS_NO_STRIP") != "1" and strip and sys.platform.startswith("linux"):
            # The release build carries debug info (~10 MiB); users need none.
            subprocess.run([strip, "--strip-unneeded", str(dst)], check=True)
        self.announce(f"copied {LIBRARY} -> {dst}", level=2)


class OptionalBuildExt(build_ext):
    """build_ext that skips libws._speedups with one clear warning when it
    cannot be compiled (no compiler, no Python.h): the package works
    without it."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # CompileError, CCompilerError, a missing compiler...
            sys.stderr.write(
                f"libws: warning: {ext.name} not built ({e}); libws.asyncio uses ctypes instead "
                "(install a C compiler and Python's headers, e.g. python3-dev, for the faster path)\n"
            )


SPEEDUPS = [] if os.environ.get("LIBWS_NO_SPEEDUPS") == "1" else [
    Extension(
        "libws._speedups",
        ["libws/_speedups.c", "libws/_session.c", "libws/_collect.c"],
        depends=["libws/_session.h", "libws/_collect.h"],
        py_limited_api=True,
        # It calls nothing in libc itself, but auditwheel tells glibc from
        # musl by a module's libc dependency: keep it.
        extra_link_args=["-Wl,--no-as-needed", "-lc"] if sys.platform.startswith("linux") else [],
    ),
]


class BinaryDistribution(Distribution):
    """Has a native library: files go to platlib (what auditwheel wants)."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """The wheel carries a native library, and the abi3 extension when it
    was built: tag it cp38-abi3-<platform> then (every CPython >= 3.8),
    else py3-none-<platform> (every Python 3)."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        if any(Path(self.bdist_dir).rglob("_speedups*.so")):
            return "cp38", "abi3", plat
        return "py3", "none", plat


setup(
    distclass=BinaryDistribution,
    ext_modules=SPEEDUPS,
    cmdclass={"build_py": BuildPyWithLibrary, "build_ext": OptionalBuildExt, "bdist_wheel": PlatformWheel},
    options={
        "build": {"build_base": os.path.join(SCRATCH, "build")},
        "egg_info": {"egg_base": SCRATCH},
    },
)

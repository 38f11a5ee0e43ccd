"""Build step: copy the libws shared library (stripped) into the package
(libws/_lib/). The wheel is platform-specific (py3-none-<platform>: pure
ctypes, any Python 3, one library); `tools/build-wheel` turns it into a
manylinux wheel with auditwheel.

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

from setuptools import Distribution, setup
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


class BinaryDistribution(Distribution):
    """Has a native library: files go to platlib (what auditwheel wants)."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """The wheel carries a native library but no extension module: tag it
    py3-none-<platform> (one wheel for every Python 3)."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
    options={
        "build": {"build_base": os.path.join(SCRATCH, "build")},
        "egg_info": {"egg_base": SCRATCH},
    },
)

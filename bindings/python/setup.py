"""Build step: copy the libws shared library into the package (libws/_lib/).

Where the library comes from, first match wins:
  1. $LIBWS_LIBRARY (a path to libws.so);
  2. $CARGO_TARGET_DIR/release/libws.so (when that variable is set);
  3. ../../target/release/libws.so (the checkout's `cargo build --release`).

All metadata lives in pyproject.toml.
"""

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 with the wheel package
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LIBNAME = {"darwin": "libws.dylib", "win32": "ws.dll"}.get(sys.platform, "libws.so")


def find_library() -> Path:
    tried = []
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
        tried.append(str(c))
    raise SystemExit(
        "libws: cannot find the shared library to package. Looked in:\n  "
        + "\n  ".join(tried)
        + "\nRun `cargo build --release` at the repository root first, or set LIBWS_LIBRARY."
    )


class BuildPyWithLibrary(build_py):
    """build_py that also copies libws.so into libws/_lib/."""

    def run(self):
        super().run()
        src = find_library()
        dst = Path(self.build_lib) / "libws" / "_lib" / LIBNAME
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        self.announce(f"copied {src} -> {dst}", level=2)


class PlatformWheel(bdist_wheel):
    """The wheel carries a native library: tag it py3-none-<platform>."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})

"""Finding and loading the shared library."""

import os
import subprocess
import sys
from pathlib import Path

import libws
from conftest import child_env


def _import(env):
    return subprocess.run([sys.executable, "-c", "import libws; print(libws.library_path)"],
                          capture_output=True, text=True, timeout=60, env=env)


def test_missing_library_names_what_was_tried(tmp_path):
    missing = tmp_path / "nowhere" / "libws.so"
    out = _import(child_env(LIBWS_LIBRARY=str(missing)))
    assert out.returncode != 0
    assert "LibraryNotFoundError" in out.stderr
    assert str(missing) in out.stderr
    assert "LIBWS_LIBRARY" in out.stderr and "cargo build --release" in out.stderr


def test_unloadable_library_is_reported(tmp_path):
    bogus = tmp_path / "libws.so"
    bogus.write_bytes(b"not an ELF file")
    out = _import(child_env(LIBWS_LIBRARY=str(bogus)))
    assert out.returncode != 0
    assert str(bogus) in out.stderr and "could not be loaded" in out.stderr


def test_library_from_environment_variable():
    out = _import(child_env(LIBWS_LIBRARY=libws.library_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == libws.library_path


def test_where_the_library_came_from():
    path = Path(libws.library_path)
    assert path.is_file()
    if os.environ.get("LIBWS_TEST_INSTALLED") == "1":
        # pip install put the library inside the package
        assert path.parent == Path(libws.__file__).parent / "_lib"
        assert "site-packages" in libws.__file__
    assert libws.library_version.count(".") == 2


def test_the_memory_budget_can_be_set_and_read():
    assert libws.memory_budget_used() >= 0
    default = libws._ffi.ws_memory_budget()
    assert 0 < default <= 1 << 30
    libws.set_memory_budget(256 << 20)
    assert libws._ffi.ws_memory_budget() == 256 << 20
    libws.set_memory_budget(default)
    for bad in (-1, 1 << 64, 1.5):
        try:
            libws.set_memory_budget(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{bad!r} was accepted")

//! The installed tree, as a C or C++ user gets it: `make install` into a
//! temporary prefix, then outside programs (`tests/install/`) built
//! against that prefix only — with pkg-config (shared and static) and with
//! CMake's `find_package(libws CONFIG)` (shared, static, and a C++17
//! program using ws.hpp) — and run. Also: the SONAME, the symlinks, no
//! debug information, packed relocations and the size of the installed
//! libraries (built with the `dist` profile), and a DESTDIR staging
//! install that writes the final paths into its files. And the build
//! without TLS (`make install TLS=0`, into a second prefix, built after
//! the first, reusing its dependencies): its stripped `.so` under 2 MiB, an outside
//! program linked with pkg-config (shared and static) that echoes over
//! `ws://` and gets `WS_ERR_UNSUPPORTED` with the reason for `wss://`.
//!
//! CMake is Debian's `cmake`; when it is missing and we are root it is
//! installed with apt-get (a fresh CI machine), otherwise the test fails
//! saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => manifest_dir().join(d),
        None => manifest_dir().join("target"),
    }
}

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `make install` with `vars`, from the repository root. The nested
/// cargo inherits the target directory; the outer cargo's build lock is
/// released while tests run.
fn make_install(vars: &[(&str, &Path)]) {
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(manifest_dir()).arg("install").arg(format!("CARGO={}", env!("CARGO")));
    for (k, v) in vars {
        cmd.arg(format!("{k}={}", v.display()));
    }
    run(&mut cmd, "make install");
}

/// This test binary's folder, emptied of earlier runs' trees once.
fn test_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = target_dir().join("install-test");
        let _ = std::fs::remove_dir_all(&base);
        base.join(std::process::id().to_string())
    })
}

/// One install into a fresh temporary prefix per test binary.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let p = test_root().join("prefix");
        let t0 = Instant::now();
        make_install(&[("PREFIX", &p)]);
        eprintln!("install: make install took {:.1} s", t0.elapsed().as_secs_f64());
        p
    })
}

/// `make install TLS=0` into a second prefix, once per test binary (its
/// own target directory below ours: the Makefile keeps the two builds
/// apart, so both stay cached, and once cached they run in parallel). A
/// cold one waits for the first install, whose `dist` build seeds it
/// (`seed_no_tls_target_dir`).
fn prefix_without_tls() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        if !target_dir().join("no-tls/dist").exists() {
            prefix();
            seed_no_tls_target_dir();
        }
        let p = test_root().join("prefix-no-tls");
        let t0 = Instant::now();
        make_install(&[("PREFIX", &p), ("TLS", Path::new("0"))]);
        eprintln!("install: make install TLS=0 took {:.1} s", t0.elapsed().as_secs_f64());
        p
    })
}

/// When the build without TLS has no target directory yet (a fresh
/// checkout, CI), it starts as a copy of the `dist` build with TLS minus
/// libws's own outputs (`cp -a`: cargo's fingerprints are mtimes and
/// hashes, so the copies are fresh): every dependency they share (the
/// build script's cbindgen, syn and serde, url and its ICU crates, zlib-rs,
/// mio, rustix, ...) is then reused, and cargo builds only libws and the
/// libws build script again (~17 s here instead of ~150 s for a cold
/// build). The copy is made under a temporary name and renamed, so an
/// interrupted copy is never taken for a target directory.
fn seed_no_tls_target_dir() {
    let from = target_dir().join("dist");
    let to = target_dir().join("no-tls/dist");
    if to.exists() || !from.is_dir() {
        return;
    }
    let t0 = Instant::now();
    let tmp = target_dir().join(format!("no-tls/dist.seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    run(Command::new("cp").arg("-a").arg(&from).arg(&tmp), "cp -a target/dist target/no-tls/dist");
    // libws's own outputs are named without a hash (libws.so, libws.a,
    // libws.rlib, ws.d); its fingerprints and build-script outputs carry
    // the TLS build's hashes. Gone, so nothing of the TLS build's libws
    // (ws.h from its build script included) can stand in for the other's.
    for dir in [tmp.clone(), tmp.join("deps")] {
        for name in ["libws.so", "libws.a", "libws.rlib", "libws.d", "ws.d"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    for dir in [tmp.join("build"), tmp.join(".fingerprint")] {
        for e in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            if e.file_name().to_str().is_some_and(|n| n.starts_with("libws-")) {
                std::fs::remove_dir_all(e.path()).unwrap();
            }
        }
    }
    let _ = std::fs::remove_dir_all(tmp.join("incremental"));
    std::fs::rename(&tmp, &to).unwrap();
    eprintln!("install: target/no-tls/dist seeded from target/dist in {:.1} s", t0.elapsed().as_secs_f64());
}

fn work_dir(name: &str) -> PathBuf {
    let d = test_root().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn readelf(args: &[&str], file: &Path) -> String {
    run(Command::new("readelf").args(args).arg(file), &format!("readelf {args:?} {}", file.display()))
}

fn needed(exe: &Path) -> Vec<String> {
    readelf(&["-d"], exe)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1).and_then(|s| s.split(']').next()).map(str::to_string))
        .collect()
}

/// Runs an installed-tree program and checks its echo line and, for
/// `app.c`, its TLS lines: the closed port refused and the bad PEM judged
/// (TLS), or the URL refused with the reason and every TLS setting
/// refused (a library without TLS).
fn run_app(exe: &Path, tls: bool) {
    let out = Command::new(exe)
        // cargo test puts target/debug on LD_LIBRARY_PATH; the program must
        // find the installed library on its own.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tls_lines: &[&str] = if tls {
        &[
            "tls yes; wss: WS_ERR_CONNECT",
            "tls settings: client made; server WS_ERR_TLS_CONFIG: bad TLS setting; https proxy WS_OK",
        ]
    } else {
        &[
            "tls no; wss: WS_ERR_UNSUPPORTED: not supported; wss:// URLs: this libws was built without TLS \
             (cargo feature `tls`; make install TLS=0)",
            "tls settings: client NULL; server WS_ERR_UNSUPPORTED: not supported; \
             https proxy WS_ERR_UNSUPPORTED: not supported",
        ]
    };
    let c_program = exe.file_name().is_some_and(|n| n != "app_cpp");
    assert!(
        out.status.success()
            && stdout.contains(&format!("echo ok libws {VERSION}"))
            && (!c_program || tls_lines.iter().all(|l| stdout.contains(l))),
        "{} failed ({}), expected {tls_lines:?}: {stdout}{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn app_source(name: &str) -> PathBuf {
    manifest_dir().join("tests/install").join(name)
}

#[test]
fn installed_files_and_links() {
    let p = prefix();
    let lib = p.join("lib");
    let real = lib.join(format!("libws.so.{VERSION}"));
    let soname = format!("libws.so.{MAJOR}");
    assert!(real.is_file() && !real.is_symlink(), "{} is the library file", real.display());
    assert_eq!(std::fs::read_link(lib.join(&soname)).unwrap(), Path::new(&format!("libws.so.{VERSION}")));
    assert_eq!(std::fs::read_link(lib.join("libws.so")).unwrap(), Path::new(&soname));
    for f in ["lib/libws.a", "include/ws.h", "include/ws.hpp", "lib/pkgconfig/libws.pc"] {
        assert!(p.join(f).is_file(), "{f} installed");
    }
    for f in ["libwsConfig.cmake", "libwsConfigVersion.cmake"] {
        assert!(lib.join("cmake/libws").join(f).is_file(), "cmake/libws/{f} installed");
    }
    let h = std::fs::read_to_string(p.join("include/ws.h")).unwrap();
    assert!(h.contains(&format!("#define WS_VERSION_STRING \"{VERSION}\"")), "installed ws.h has the version");
    let pc = std::fs::read_to_string(lib.join("pkgconfig/libws.pc")).unwrap();
    assert!(pc.contains(&format!("Version: {VERSION}")), "libws.pc has the version:\n{pc}");
}

#[test]
fn installed_library_has_soname_no_debug_info_and_is_small() {
    let lib = prefix().join("lib");
    let real = lib.join(format!("libws.so.{VERSION}"));
    let dynamic = readelf(&["-d"], &real);
    assert!(
        dynamic.contains(&format!("Library soname: [libws.so.{MAJOR}]")),
        "readelf -d shows the SONAME:\n{dynamic}"
    );
    let sections = readelf(&["-S", "-W"], &real);
    assert!(!sections.contains(".debug_info"), "the installed .so carries no debug info");
    let size = std::fs::metadata(&real).unwrap().len();
    eprintln!("installed libws.so: {size} bytes ({:.2} MiB)", size as f64 / 1048576.0);
    // The `dist` profile (Cargo.toml) with packed relocations makes it
    // 2.81 MiB (README, "Size of the installed library": where the bytes
    // go). The 2 MiB is reached by the build without TLS
    // (`without_tls_library_is_under_2_mib`), not with it; this bound
    // catches losing the profile (3.15 MiB), the packed relocations
    // (+115 KiB) or debug info.
    assert!(size < 2944 * 1024, "the installed .so is {size} bytes, over 2.875 MiB");
    if glibc_knows_relr() {
        assert!(dynamic.contains("(RELR)"), "relative relocations packed (DT_RELR):\n{dynamic}");
    }
    let a = lib.join("libws.a");
    let static_sections = readelf(&["-S", "-W"], &a);
    assert!(!static_sections.contains(".debug_info"), "the installed .a carries no debug info");
    eprintln!("installed libws.a: {} bytes", std::fs::metadata(&a).unwrap().len());
}

/// glibc 2.36 or later on this machine: the Makefile then links with
/// `-z pack-relative-relocs`.
fn glibc_knows_relr() -> bool {
    let out = run(Command::new("getconf").arg("GNU_LIBC_VERSION"), "getconf GNU_LIBC_VERSION");
    let version = out.trim().strip_prefix("glibc ").unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}

fn pkg_config(args: &[&str]) -> Vec<String> {
    pkg_config_in(prefix(), args)
}

fn pkg_config_in(prefix: &Path, args: &[&str]) -> Vec<String> {
    let out = run(
        Command::new("pkg-config").env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")).args(args).arg("libws"),
        "pkg-config",
    );
    out.split_whitespace().map(str::to_string).collect()
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// `app.c` built with `pkg-config --cflags --libs` against `prefix`.
fn app_shared(prefix: &Path, dir: &Path) -> PathBuf {
    let exe = dir.join("app");
    let libdir = pkg_config_in(prefix, &["--variable=libdir"]).join(" ");
    run(
        Command::new(cc())
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread"])
            .args(pkg_config_in(prefix, &["--cflags"]))
            .arg("-o")
            .arg(&exe)
            .arg(app_source("app.c"))
            .args(pkg_config_in(prefix, &["--libs"]))
            .arg(format!("-Wl,-rpath,{libdir}")),
        "cc app.c $(pkg-config --cflags --libs libws)",
    );
    assert!(needed(&exe).contains(&format!("libws.so.{MAJOR}")), "the program needs libws.so.{MAJOR}");
    exe
}

#[test]
fn pkg_config_shared() {
    run_app(&app_shared(prefix(), &work_dir("pkgconfig-shared")), true);
}

/// `packaging/so_throughput.c` (the program that compares the installed
/// library's speed with the release build's, README "Size of the installed
/// library") builds against the installed tree and runs a short round.
#[test]
fn throughput_program_runs_against_the_installed_library() {
    let dir = work_dir("throughput");
    let exe = dir.join("so_throughput");
    let libdir = pkg_config(&["--variable=libdir"]).join(" ");
    run(
        Command::new(cc())
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-pthread"])
            .args(pkg_config(&["--cflags"]))
            .arg("-o")
            .arg(&exe)
            .arg(manifest_dir().join("packaging/so_throughput.c"))
            .args(pkg_config(&["--libs"]))
            .arg(format!("-Wl,-rpath,{libdir}")),
        "cc packaging/so_throughput.c $(pkg-config --cflags --libs libws)",
    );
    let out = run(
        Command::new("timeout").arg("60").arg(&exe).args(["--seconds", "0.05"]).env_remove("LD_LIBRARY_PATH"),
        "so_throughput",
    );
    let rates: Vec<f64> = out
        .lines()
        .filter(|l| l.ends_with(" us CPU/msg"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
        .collect();
    assert!(rates.len() == 6 && rates.iter().all(|&r| r > 0.0), "six cases, each with echoes:\n{out}");
}

/// `app.c` linked statically against `prefix` with exactly what
/// `pkg-config --static` says: if Libs.private missed a system library the
/// link would fail.
fn app_static(prefix: &Path, dir: &Path) -> PathBuf {
    let exe = dir.join("app");
    // `-lws` would pick libws.so next to libws.a; name the archive instead.
    let libs: Vec<String> = pkg_config_in(prefix, &["--static", "--libs"])
        .into_iter()
        .map(|a| if a == "-lws" { "-l:libws.a".into() } else { a })
        .collect();
    run(
        Command::new(cc())
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-pthread"])
            .args(pkg_config_in(prefix, &["--cflags"]))
            .arg("-o")
            .arg(&exe)
            .arg(app_source("app.c"))
            .args(&libs),
        "cc app.c $(pkg-config --static --libs libws)",
    );
    let n = needed(&exe);
    assert!(!n.iter().any(|l| l.starts_with("libws")), "statically linked, yet needs {n:?}");
    exe
}

#[test]
fn pkg_config_static() {
    run_app(&app_static(prefix(), &work_dir("pkgconfig-static")), true);
}

/// The bound: the installed library without TLS is under 2 MiB
/// (stripped, like every installed library), with the same SONAME.
#[test]
fn without_tls_library_is_under_2_mib() {
    let real = prefix_without_tls().join("lib").join(format!("libws.so.{VERSION}"));
    let dynamic = readelf(&["-d"], &real);
    assert!(dynamic.contains(&format!("Library soname: [libws.so.{MAJOR}]")), "SONAME:\n{dynamic}");
    assert!(!readelf(&["-S", "-W"], &real).contains(".debug_info"), "the installed .so carries no debug info");
    let size = std::fs::metadata(&real).unwrap().len();
    eprintln!("installed libws.so without TLS: {size} bytes ({:.2} MiB)", size as f64 / 1048576.0);
    assert!(size < 2 * 1024 * 1024, "the installed .so without TLS is {size} bytes, not under 2 MiB");
}

/// The build without TLS generates the committed header (one C ABI for
/// both), and programs built with its pkg-config (shared and static) echo
/// over ws:// and get WS_ERR_UNSUPPORTED with the reason for wss://.
#[test]
fn without_tls_pkg_config_echo_and_wss_refused() {
    let p = prefix_without_tls();
    let committed = std::fs::read_to_string(manifest_dir().join("include/ws.h")).unwrap();
    assert_eq!(generated_header(&target_dir().join("no-tls/dist")), committed, "ws.h of the build without TLS");
    run_app(&app_shared(p, &work_dir("no-tls-shared")), false);
    run_app(&app_static(p, &work_dir("no-tls-static")), false);
}

/// The header build.rs generated last in `profile_dir` (`$OUT_DIR/ws.h`
/// of its newest build-script run).
fn generated_header(profile_dir: &Path) -> String {
    let newest = std::fs::read_dir(profile_dir.join("build"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path().join("out/ws.h")))
        .filter_map(|h| Some((std::fs::metadata(&h).ok()?.modified().ok()?, h)))
        .max()
        .unwrap_or_else(|| panic!("no ws.h generated under {}", profile_dir.display()));
    std::fs::read_to_string(newest.1).unwrap()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

fn ensure_cmake() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if have("cmake") {
            return;
        }
        let root = run(Command::new("id").arg("-u"), "id -u").trim() == "0";
        assert!(root, "cmake is not installed and we are not root to install it: apt-get install cmake");
        eprintln!("install: cmake missing; apt-get install -y cmake");
        run(
            Command::new("timeout")
                .args([
                    "900",
                    "apt-get",
                    "-o",
                    "DPkg::Lock::Timeout=600",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "cmake",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt-get install cmake",
        );
        assert!(have("cmake"), "cmake still missing after apt-get");
    });
}

#[test]
fn cmake_find_package() {
    ensure_cmake();
    let build = work_dir("cmake-build");
    let t0 = Instant::now();
    run(
        Command::new("cmake")
            .arg("-S")
            .arg(manifest_dir().join("tests/install/cmake"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix().display()))
            .arg("-DCMAKE_C_FLAGS=-Wall -Wextra -Werror -pedantic")
            .arg("-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror -pedantic"),
        "cmake configure (find_package(libws CONFIG))",
    );
    run(Command::new("cmake").arg("--build").arg(&build), "cmake --build");
    eprintln!("install: CMake project configured and built in {:.1} s", t0.elapsed().as_secs_f64());
    let shared = build.join("app_shared");
    assert!(needed(&shared).contains(&format!("libws.so.{MAJOR}")), "libws::ws links the shared library");
    let static_exe = build.join("app_static");
    assert!(!needed(&static_exe).iter().any(|l| l.starts_with("libws")), "libws::ws_static links the archive");
    for exe in [shared, static_exe, build.join("app_cpp")] {
        run_app(&exe, true);
    }
}

/// A distribution's staging install: files land under DESTDIR, and what
/// they name is the final PREFIX/LIBDIR.
#[test]
fn destdir_staging_names_the_final_paths() {
    let stage = work_dir("stage");
    let final_prefix = Path::new("/opt/libws-test");
    let final_libdir = final_prefix.join("lib64");
    make_install(&[("DESTDIR", &stage), ("PREFIX", final_prefix), ("LIBDIR", &final_libdir)]);
    let staged = |p: &Path| stage.join(p.strip_prefix("/").unwrap());
    let lib = staged(&final_libdir);
    assert!(lib.join(format!("libws.so.{VERSION}")).is_file(), "library staged under DESTDIR/LIBDIR");
    assert!(staged(final_prefix).join("include/ws.h").is_file(), "header staged under DESTDIR/PREFIX/include");
    let pc = std::fs::read_to_string(lib.join("pkgconfig/libws.pc")).unwrap();
    let cmake = std::fs::read_to_string(lib.join("cmake/libws/libwsConfig.cmake")).unwrap();
    for (what, text) in [("libws.pc", &pc), ("libwsConfig.cmake", &cmake)] {
        assert!(text.contains("/opt/libws-test/lib64"), "{what} names the final LIBDIR:\n{text}");
        assert!(!text.contains(stage.to_str().unwrap()), "{what} must not name DESTDIR:\n{text}");
    }
    assert!(!final_prefix.exists(), "nothing was written outside DESTDIR");
}

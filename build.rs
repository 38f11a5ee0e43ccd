//! Generates `include/ws.h` from the C ABI in `src/ffi/` with cbindgen.
//!
//! cbindgen reads `src/ffi/` only (not the whole crate): every `pub const`
//! it sees becomes a macro, and the Rust side's own constants (`NORMAL`,
//! `MAX_HEADER_LEN`, ...) must not leak into a C namespace. The version
//! macros come from Cargo's package version, so they cannot drift from
//! `ws_version()` or Cargo.toml.
//!
//! The header is committed. A fresh copy also goes to `$OUT_DIR/ws.h`; the
//! `header_is_current` test compares it with the committed one, so an API
//! change without a regenerated header fails the tests.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The shared library's SONAME carries the ABI major version (libws.so.0
    // for every 0.x release; README "Versioning" has the bump rule), so the
    // dynamic linker refuses a libws whose ABI differs from the one a
    // program was linked against.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libws.so.{major}");
    }
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    config.after_includes = Some(version_macros());
    let bindings =
        match cbindgen::Builder::new().with_src(crate_dir.join("src/ffi/mod.rs")).with_config(config).generate() {
            Ok(b) => b,
            Err(e) => {
                // A syntax error in the crate is reported by rustc itself; don't
                // fail the build script over it.
                println!("cargo:warning=cbindgen could not generate the header: {e}");
                return;
            }
        };
    let mut raw = Vec::new();
    bindings.write(&mut raw);
    let header = c89_comments(&String::from_utf8(raw).expect("cbindgen writes UTF-8"));
    let fresh = out_dir.join("ws.h");
    std::fs::write(&fresh, &header).expect("write $OUT_DIR/ws.h");
    println!("cargo:rustc-env=LIBWS_FRESH_HEADER={}", fresh.display());
    // Keep the committed header up to date for developers (CI checks that
    // what is committed matches; see tests/header.rs).
    let committed = crate_dir.join("include").join("ws.h");
    if std::fs::read(&committed).ok().as_deref() != Some(header.as_bytes()) {
        let _ = std::fs::create_dir_all(crate_dir.join("include"));
        let _ = std::fs::write(&committed, &header);
    }
}

/// `WS_VERSION_*` from the package version (`CARGO_PKG_VERSION_*`).
fn version_macros() -> String {
    let v = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("cargo sets {k}"));
    let (major, minor, patch) =
        (v("CARGO_PKG_VERSION_MAJOR"), v("CARGO_PKG_VERSION_MINOR"), v("CARGO_PKG_VERSION_PATCH"));
    format!(
        "\n/* The version of this header; ws_version() gives the library's. */\n\
         #define WS_VERSION_MAJOR {major}\n\
         #define WS_VERSION_MINOR {minor}\n\
         #define WS_VERSION_PATCH {patch}\n\
         #define WS_VERSION_STRING \"{}\"\n\
         /* One number that grows with every release: MAJOR * 10000 + MINOR * 100 + PATCH. */\n\
         #define WS_VERSION_NUMBER ({major} * 10000 + {minor} * 100 + {patch})",
        v("CARGO_PKG_VERSION")
    )
}

/// cbindgen ends its `extern "C"` guards with `//` comments; C89 has no
/// `//`, so they become `/* */` (the only `//` cbindgen writes outside
/// doc comments, which are already `/** */`).
fn c89_comments(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    for line in header.lines() {
        let t = line.trim_start();
        match line.find("//") {
            Some(i) if t.starts_with('#') || t.starts_with('}') => {
                out.push_str(line[..i].trim_end());
                out.push_str(" /* ");
                out.push_str(line[i + 2..].trim());
                out.push_str(" */");
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

//! Generates `include/ws.h` from the C ABI in `src/ffi/` with cbindgen.
//!
//! The header is committed. A fresh copy also goes to `$OUT_DIR/ws.h`; the
//! `header_is_current` test compares it with the committed one, so an API
//! change without a regenerated header fails the tests.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new().with_crate(&crate_dir).with_config(config).generate() {
        Ok(b) => b,
        Err(e) => {
            // A syntax error in the crate is reported by rustc itself; don't
            // fail the build script over it.
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            return;
        }
    };
    let fresh = out_dir.join("ws.h");
    bindings.write_to_file(&fresh);
    println!("cargo:rustc-env=LIBWS_FRESH_HEADER={}", fresh.display());
    // Keep the committed header up to date for developers (CI checks that
    // what is committed matches; see tests/header.rs).
    let committed = crate_dir.join("include").join("ws.h");
    let new = std::fs::read(&fresh).unwrap_or_default();
    if std::fs::read(&committed).ok().as_deref() != Some(&new[..]) {
        let _ = std::fs::create_dir_all(crate_dir.join("include"));
        let _ = std::fs::write(&committed, &new);
    }
}

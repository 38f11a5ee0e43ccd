//! The committed `include/ws.h` must be what cbindgen generates from the
//! current `src/ffi/`: an API change without a regenerated, committed
//! header fails here.

use std::path::Path;
use std::process::Command;

#[test]
fn header_is_current() {
    let fresh = std::fs::read_to_string(env!("LIBWS_FRESH_HEADER")).expect("build.rs wrote a fresh header");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Prefer the version committed to git: build.rs rewrites the working
    // copy, so comparing with the file on disk alone would prove nothing.
    let committed = Command::new("git")
        .args(["show", "HEAD:include/ws.h"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let (what, committed) = match committed {
        Some(c) => ("git HEAD:include/ws.h", c),
        None => {
            eprintln!("note: not a git checkout; comparing with include/ws.h on disk");
            ("include/ws.h", std::fs::read_to_string(root.join("include/ws.h")).expect("include/ws.h exists"))
        }
    };
    assert!(
        committed == fresh,
        "{what} differs from the header cbindgen generates now: commit the regenerated include/ws.h"
    );
}

#[test]
fn header_declares_every_exported_function() {
    let header = std::fs::read_to_string(env!("LIBWS_FRESH_HEADER")).unwrap();
    for f in
        ["ws_dial", "ws_listen", "ws_listener_accept", "ws_conn_read_message", "ws_conn_write_message", "ws_conn_free"]
    {
        assert!(header.contains(&format!("{f}(")), "{f} missing from ws.h");
    }
}

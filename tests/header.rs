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

// ---- Hygiene: names, comments, versions, compilers ---------------------------

fn committed_header() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/ws.h")).expect("include/ws.h exists")
}

/// The header with comments blanked out (string literals kept).
fn without_comments(h: &str) -> String {
    let b = h.as_bytes();
    let mut out = String::with_capacity(h.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str(&h[start..i.min(b.len())]);
        } else if h[i..].starts_with("/*") {
            let end = h[i + 2..].find("*/").map(|e| i + 2 + e + 2).expect("unterminated comment");
            // Keep the line structure for preprocessor lines.
            out.extend(h[i..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
            i = end;
        } else {
            let c = h[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// C and C++ keywords and the standard types the header may use.
const ALLOWED: &[&str] = &[
    "const",
    "struct",
    "typedef",
    "void",
    "char",
    "int",
    "unsigned",
    "signed",
    "long",
    "short",
    "float",
    "double",
    "enum",
    "union",
    "extern",
    "static",
    "inline",
    "volatile",
    "restrict",
    "bool",
    "true",
    "false",
    "size_t",
    "uint8_t",
    "uint16_t",
    "uint32_t",
    "uint64_t",
    "int8_t",
    "int16_t",
    "int32_t",
    "int64_t",
    "uintptr_t",
    "intptr_t",
];

/// Every name the header declares or defines at file scope: macros,
/// typedefs, struct/union/enum tags, functions, function-pointer typedefs.
/// Parameter and member names are not at file scope, so they may be
/// anything. A name is taken wherever an identifier appears outside
/// parentheses and braces (types used and names declared alike), plus the
/// `(*name)` of a function-pointer typedef.
fn file_scope_names(header: &str) -> Vec<String> {
    let code = without_comments(header);
    let mut names = Vec::new();
    let mut body = String::new();
    for line in code.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            if words.next() == Some("define") {
                let name: String =
                    words.next().unwrap_or("").chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                names.push(name);
            }
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    let chars: Vec<char> = body.chars().collect();
    let (mut paren, mut brace) = (0i32, 0i32);
    // Inside `extern "C" { ... }` is still file scope.
    let mut in_extern_block = false;
    let mut i = 0;
    let mut prev_two = ['\0', '\0'];
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if brace == 0 && paren == 0 && next == Some(&'{') {
                in_extern_block = true;
                i += chars[i..].iter().position(|c| *c == '{').unwrap() + 1;
            }
            continue;
        }
        if c == '}' && brace == 0 && in_extern_block {
            in_extern_block = false;
            i += 1;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let fn_pointer_name = brace == 0 && paren == 1 && prev_two == ['(', '*'];
            if (brace == 0 && paren == 0) || fn_pointer_name {
                names.push(word);
            }
            prev_two = ['\0', '\0'];
            continue;
        }
        match c {
            '(' => paren += 1,
            ')' => paren -= 1,
            '{' => brace += 1,
            '}' => brace -= 1,
            _ => {}
        }
        if !c.is_whitespace() {
            prev_two = [prev_two[1], c];
        }
        i += 1;
    }
    names.retain(|n| !ALLOWED.contains(&n.as_str()));
    names.sort();
    names.dedup();
    names
}

#[test]
fn header_names_are_prefixed() {
    let names = file_scope_names(&committed_header());
    assert!(names.len() > 150, "the scanner found only {} names: it is broken", names.len());
    for must in ["ws_dial", "ws_conn", "ws_control_handler", "WS_CLOSE_NORMAL", "ws_loop_callbacks", "WS_VERSION_MAJOR"]
    {
        assert!(names.iter().any(|n| n == must), "the scanner missed {must}");
    }
    let leaks: Vec<&String> = names.iter().filter(|n| !n.starts_with("ws_") && !n.starts_with("WS_")).collect();
    assert!(leaks.is_empty(), "ws.h declares names without the ws_/WS_ prefix: {leaks:?}");
}

#[test]
fn header_scanner_catches_a_leak() {
    let bad = "#define NORMAL 1000\ntypedef int (*handler)(int x);\nstruct ws_a { int (*cb)(void); int m; };\n\
               #ifdef __cplusplus\nextern \"C\" {\n#endif\nint helper(const struct ws_a *p);\n\
               #ifdef __cplusplus\n}\n#endif\n";
    let names = file_scope_names(bad);
    assert_eq!(names, ["NORMAL", "handler", "helper", "ws_a"]);
}

#[test]
fn header_has_no_line_comments() {
    let code = without_comments(&committed_header());
    for (n, line) in code.lines().enumerate() {
        assert!(!line.contains("//"), "ws.h line {}: a // comment (C89 has none): {line}", n + 1);
    }
}

/// WS_VERSION_* in the header, Cargo.toml's version and `ws_version()`
/// are the same.
#[test]
fn header_version_matches_the_library() {
    let h = committed_header();
    let get = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        let line = h.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{name} missing"));
        line[prefix.len()..].trim().trim_matches('"').to_string()
    };
    let cargo = env!("CARGO_PKG_VERSION");
    assert_eq!(get("WS_VERSION_STRING"), cargo);
    assert_eq!(format!("{}.{}.{}", get("WS_VERSION_MAJOR"), get("WS_VERSION_MINOR"), get("WS_VERSION_PATCH")), cargo);
    // SAFETY: ws_version returns a static NUL-terminated string.
    let lib = unsafe { std::ffi::CStr::from_ptr(ws::ffi::util::ws_version()) };
    assert_eq!(lib.to_str().unwrap(), cargo);
    let toml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(toml.contains(&format!("version = \"{cargo}\"")), "Cargo.toml holds {cargo}");
}

/// A translation unit that includes ws.h and then uses the names the
/// header used to leak, so a leak back is a compile error too.
const HEADER_TU: &str = r#"#include "ws.h"
enum { NORMAL, ABNORMAL, PROTOCOL_ERROR, MAX_HEADER_LEN, TAIL, DEFAULT_READ_BUFFER, MAX_REASON_LEN };
#if WS_VERSION_MAJOR < 0 || WS_VERSION_NUMBER < 0
#error "version macros are not preprocessor numbers"
#endif
int main(void) {
    const char *v = WS_VERSION_STRING;
    ws_status st = ws_format_close_message(WS_CLOSE_NORMAL, 0, 0, 0, 0, 0);
    return (int)st + NORMAL + TAIL + (v[0] == 0);
}
"#;

fn compile_header(compiler: &str, lang: &str, std: &str, pedantic: bool) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("libws-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(if lang == "c" { "tu.c" } else { "tu.cpp" });
    std::fs::write(&src, HEADER_TU).unwrap();
    let mut cmd = Command::new(compiler);
    cmd.arg(format!("-std={std}")).args(["-Wall", "-Wextra", "-Werror", "-fsyntax-only"]);
    if pedantic {
        cmd.arg("-pedantic");
    }
    cmd.arg(format!("-I{}", Path::new(env!("CARGO_MANIFEST_DIR")).join("include").display())).arg(&src);
    let out = cmd.output().map_err(|e| format!("{compiler}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{compiler} -std={std}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Includes ws.hpp and instantiates its templates that take types.
const HPP_TU: &str = r#"#include "ws.hpp"
enum { NORMAL, TAIL };
int main() {
    ws::result<int> r(WS_ERR_TIMEOUT, "t");
    ws::result<void> v = ws::result<void>::from(WS_OK);
    return (r.ok() ? 1 : 0) + (v.ok() ? 0 : 1) + NORMAL + TAIL;
}
"#;

fn compile_hpp(compiler: &str, std: &str, flags: &[&str]) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("libws-hpp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("tu.cpp");
    std::fs::write(&src, HPP_TU).unwrap();
    let out = Command::new(compiler)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only"])
        .args(flags)
        .arg(format!("-I{}", Path::new(env!("CARGO_MANIFEST_DIR")).join("include").display()))
        .arg(&src)
        .output()
        .map_err(|e| format!("{compiler}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{compiler} -std={std} {flags:?} ws.hpp: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn header_compiles_as_c_and_cpp() {
    let mut failures = Vec::new();
    let mut ran = 0;
    let c_compilers: Vec<&str> = ["cc", "clang"].into_iter().filter(|c| have(c)).collect();
    let cpp_compilers: Vec<&str> = ["g++", "clang++"].into_iter().filter(|c| have(c)).collect();
    assert!(!c_compilers.is_empty() && !cpp_compilers.is_empty(), "need a C and a C++ compiler");
    for cc in &c_compilers {
        for std in ["c99", "c11", "c17"] {
            ran += 1;
            failures.extend(compile_header(cc, "c", std, true).err());
        }
        // C89 with <stdint.h>: no `//` comments, no declarations after
        // statements. (-pedantic would refuse int64_t's `long long` itself.)
        ran += 1;
        failures.extend(compile_header(cc, "c", "c89", false).err());
    }
    for cxx in &cpp_compilers {
        for std in ["c++11", "c++17", "c++20"] {
            ran += 1;
            failures.extend(compile_header(cxx, "c++", std, true).err());
        }
        // ws.hpp is C++17: with and without exceptions.
        for std in ["c++17", "c++20"] {
            for flags in [&[][..], &["-fno-exceptions"][..]] {
                ran += 1;
                failures.extend(compile_hpp(cxx, std, flags).err());
            }
        }
    }
    assert!(failures.is_empty(), "{} of {ran} compiles failed:\n{}", failures.len(), failures.join("\n"));
}

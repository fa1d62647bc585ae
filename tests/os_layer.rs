//! The OS layer is the only caller of the memory-mapping syscalls: no `.rs` file under `src/`
//! or `cdylib/src/` outside `src/os/` calls `mmap`, `munmap`, `mprotect`, `madvise`,
//! `process_madvise` or `mremap` (nor their variants, nor `libc::syscall` with their numbers).
//!
//! The scan blanks out comments and string and character literals, then looks for a
//! forbidden name preceded by a non-identifier character and followed by `(`.

use std::fs;
use std::path::{Path, PathBuf};

/// Functions only the OS layer may call.
const FORBIDDEN_CALLS: &[&str] = &[
    "mmap",
    "mmap64",
    "munmap",
    "mprotect",
    "madvise",
    "posix_madvise",
    "process_madvise",
    "mremap",
];

/// The only folder whose files may call them, relative to the package root.
const OS_LAYER: &str = "src/os/";
/// Files of the OS layer that must be scanned: between them they make every call (the
/// scanner's self-check).
const OS_LINUX: &str = "src/os/linux.rs";
const OS_POSIX: &str = "src/os/posix.rs";

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `src` with comments and the contents of string, byte-string, raw-string and character
/// literals replaced by spaces. Newlines are kept, so line numbers stay right.
fn blank_non_code(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, chunk: &[char]| {
        out.extend(chunk.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let at = |i: usize, t: &str| t.chars().enumerate().all(|(k, c)| s.get(i + k) == Some(&c));
    let mut i = 0;
    while i < s.len() {
        let start = i;
        if at(i, "//") {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 0;
            while i < s.len() {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if s[i] == 'r'
            && (i == 0
                || !is_ident(s[i - 1])
                || (s[i - 1] == 'b' && (i < 2 || !is_ident(s[i - 2]))))
            && {
                let mut j = i + 1;
                while s.get(j) == Some(&'#') {
                    j += 1;
                }
                s.get(j) == Some(&'"')
            }
        {
            // Raw string: r"..." or r#"..."# (the `b` of br"..." was already copied).
            let hashes = s[i + 1..].iter().take_while(|&&c| c == '#').count();
            i += 2 + hashes;
            let close: String = std::iter::once('"')
                .chain((0..hashes).map(|_| '#'))
                .collect();
            while i < s.len() && !at(i, &close) {
                i += 1;
            }
            i = (i + close.len()).min(s.len());
        } else if s[i] == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(s.len());
        } else if s[i] == '\'' && s.get(i + 1) == Some(&'\\') {
            // Escaped character literal: '\n', '\'', '\u{..}'.
            i += 3;
            while i < s.len() && s[i] != '\'' {
                i += 1;
            }
            i = (i + 1).min(s.len());
        } else if s[i] == '\'' && s.get(i + 2) == Some(&'\'') {
            i += 3; // plain character literal, '"' included
        } else {
            out.push(s[i]); // code, including the quote of a lifetime or label
            i += 1;
            continue;
        }
        blank(&mut out, &s[start..i]);
    }
    out
}

/// `(line, name)` of every call of a forbidden function, and every use of a forbidden
/// syscall number (`SYS_mmap`, ...), in the code of `src`.
fn forbidden_calls(src: &str) -> Vec<(usize, String)> {
    let code = blank_non_code(src);
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if !is_ident(chars[i]) || (i > 0 && is_ident(chars[i - 1])) {
                i += 1;
                continue;
            }
            let end = i + chars[i..].iter().take_while(|&&c| is_ident(c)).count();
            let word: String = chars[i..end].iter().collect();
            let next = chars[end..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(') && FORBIDDEN_CALLS.contains(&word.as_str());
            let is_sysno = word
                .strip_prefix("SYS_")
                .is_some_and(|rest| FORBIDDEN_CALLS.iter().any(|f| rest.starts_with(f)));
            if is_call || is_sysno {
                found.push((n + 1, word));
            }
            i = end;
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_os_layer_calls_mapping_syscalls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("cdylib/src"), &mut files);
    files.sort();
    let rel = |p: &Path| {
        p.strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };
    let names: Vec<String> = files.iter().map(|p| rel(p)).collect();
    for must in [OS_LINUX, OS_POSIX, "src/lib.rs", "cdylib/src/lib.rs"] {
        assert!(
            names.iter().any(|n| n == must),
            "{must} not scanned; scanned {names:?}"
        );
    }

    let mut os_calls = Vec::new();
    let mut violations = Vec::new();
    for (path, name) in files.iter().zip(&names) {
        let src = fs::read_to_string(path).unwrap();
        let calls = forbidden_calls(&src);
        if name.starts_with(OS_LAYER) {
            os_calls.extend(calls);
        } else {
            let lines: Vec<&str> = src.lines().collect();
            for (line, word) in calls {
                violations.push(format!("{name}:{line}: {word}: {}", lines[line - 1].trim()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "only {OS_LAYER} may call the mapping syscalls:\n{}",
        violations.join("\n")
    );
    // Self-check: the scanner does see the calls the OS layer must make.
    for must in ["mmap", "munmap", "mprotect", "madvise"] {
        assert!(
            os_calls.iter().any(|(_, w)| w == must),
            "scanner found no call of {must} in {OS_LAYER} (found {os_calls:?})"
        );
    }
}

#[test]
fn scanner_finds_calls_and_ignores_the_rest() {
    let src = r##"
use libc::{mmap, munmap};
fn f() {
    let p = unsafe { libc::mmap(ptr::null_mut(), len, 0, 0, -1, 0) };
    munmap (p, len);
    let q = mremap(p, 1, 2, 0);
    libc::syscall(libc::SYS_madvise, p, len, 4);
    x.mprotect(a);
}
// mmap(p, len) in a line comment
/// munmap(p, len) in a doc comment
/* mprotect(p)
   /* nested */ madvise(p) */
fn g<'a>(s: &'a str) -> char {
    let _ = "mmap(inside a string \" madvise(";
    let _ = r#"munmap(raw "string")"#;
    let _ = b"mremap(";
    let _ = '"'; let _ = '\'';
    my_mmap(1); mmap_count(2); os::reserve(3); let mmap = 4;
    'x'
}
"##;
    let found = forbidden_calls(src);
    let words: Vec<(usize, &str)> = found.iter().map(|(l, w)| (*l, w.as_str())).collect();
    assert_eq!(
        words,
        [
            (4, "mmap"),
            (5, "munmap"),
            (6, "mremap"),
            (7, "SYS_madvise"),
            (8, "mprotect")
        ]
    );
    // The blanked text keeps every line.
    assert_eq!(blank_non_code(src).lines().count(), src.lines().count());
}

/// Issue 18: what differs between platforms reaches the upper layers through the OS layer's
/// contract, so no code outside `src/os/` names an operating system or an architecture in a
/// `cfg` (comments and strings are not code and may).
#[test]
fn only_the_os_layer_names_a_platform() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("cdylib/src"), &mut files);
    let mut seen_in_os = false;
    let mut violations = Vec::new();
    for path in &files {
        let name = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let code = blank_non_code(&fs::read_to_string(path).unwrap());
        for (i, line) in code.lines().enumerate() {
            // Not `target_env`: `config.rs` asks for glibc's `environ` with it (a C library,
            // not a system or a processor).
            for word in ["target_os", "target_arch", "target_family"] {
                if line.contains(word) {
                    if name.starts_with(OS_LAYER) {
                        seen_in_os = true;
                    } else {
                        violations.push(format!("{name}:{}: {word}", i + 1));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "only {OS_LAYER} may name a platform:\n{}",
        violations.join("\n")
    );
    assert!(seen_in_os, "scanner found no platform name in {OS_LAYER}");
}

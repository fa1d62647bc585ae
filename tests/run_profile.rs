//! `mapalloc-run --leaks`: the runner's side of heap profiles (issue 19), tested with a
//! stand-in program that writes its profile where `MAPALLOC_PROF_FILE` says, as the allocator
//! does at exit, and forks a child that writes one too. Checks that the runner sets the
//! variables, builds mapalloc-prof, reads the top process's profile (not the child's), lists
//! the child's, and returns the program's status.

use std::path::Path;
use std::process::Command;

/// A shell script: a profile for this process (`%p` = `$$`) with one leaking stack of 3000
/// bytes, then a child shell writes its own (nothing in use).
const STAND_IN: &str = r#"
[ "$MAPALLOC_PROF" = leaks ] || { echo "MAPALLOC_PROF is '$MAPALLOC_PROF'" >&2; exit 9; }
write() {
  out=$(printf '%s' "$MAPALLOC_PROF_FILE" | sed "s/%p/$1/")
  { echo 'heap profile:   3:  3000 [   4:  4000] @ heapprofile'
    echo '     3:  3000 [   4:  4000] @ 0x1234 0x5678'
    echo
    echo 'MAPPED_LIBRARIES:'
    cat /proc/$1/maps; } > "$out"
}
write $$
sh -c 'out=$(printf "%s" "$MAPALLOC_PROF_FILE" | sed "s/%p/$$/"); printf "heap profile: 0: 0 [1: 8] @ heapprofile\n 0: 0 [1: 8] @ 0x1\n" > "$out"'
exit 3
"#;

#[test]
fn leaks_run_reads_the_top_process_profile() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run-profile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let profiles = dir.join("profiles");
    // Left by an "earlier run": removed before the program runs.
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(profiles.join("mapalloc.1.leaks"), "stale").unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_mapalloc-run"))
        .args(["--leaks", "--profile-dir"])
        .arg(&profiles)
        .args(["sh", "-c", STAND_IN])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The program's status, not the tool's.
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(!profiles.join("mapalloc.1.leaks").exists());

    let pid = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mapalloc-run: reading the profile of process "))
        .unwrap_or_else(|| panic!("no top process named\n{stderr}"));
    let top = profiles.join(format!("mapalloc.{pid}.leaks"));
    assert!(
        stdout.contains(&format!("mapalloc-prof: {}", top.display())),
        "{stdout}"
    );
    assert!(stdout.contains("(3000 bytes) in 3 blocks"), "{stdout}");
    // Unknown addresses outside every mapping print as such.
    assert!(stdout.contains("0x1234"), "{stdout}");
    // The child shell's profile, and those of the shell's helpers (printf, sed), which run
    // under the same preloaded allocator and write their own at exit.
    assert!(
        stdout.contains("other processes (child processes):"),
        "{stdout}"
    );
    for ext in [".collapsed", ".inuse.svg", ".alloc.svg"] {
        let mut p = top.clone().into_os_string();
        p.push(ext);
        assert!(Path::new(&p).is_file(), "{p:?} missing\n{stdout}");
    }
}

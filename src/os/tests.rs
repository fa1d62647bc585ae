//! Unit tests of the OS layer that map real memory: also run with `MAPALLOC_TEST_PAGE_SIZE`
//! (see `posix.rs`'s `test_page_size`).

use super::*;

/// Mappings start at a multiple of the OS page size as the crate sees it (with
/// `MAPALLOC_TEST_PAGE_SIZE`, a larger page than the kernel's), and guards, purges and
/// unmappings of whole pages work on them.
#[test]
#[cfg_attr(miri, ignore = "raw syscalls")]
fn mappings_follow_the_page_size() {
    let ps = page_size();
    if let Some(v) = std::env::var_os("MAPALLOC_TEST_PAGE_SIZE") {
        assert_eq!(v.to_str().and_then(|s| s.parse().ok()), Some(ps));
    }
    assert_eq!(page_round_up(1), Some(ps));
    for n in [1, 3, 17] {
        let p = map(n * ps, true);
        assert!(!p.is_null());
        assert_eq!(p as usize % ps, 0, "{n} pages at {p:?}");
        // SAFETY: our own fresh mapping of `n` pages; nothing else uses it.
        unsafe {
            p.add(n * ps - 1).write(1);
            purge(p, n * ps);
            assert_eq!(p.add(n * ps - 1).read(), 0, "purged pages read zero");
            if n > 1 {
                assert!(guard(p.add(ps), ps));
            }
            release(p, n * ps);
        }
    }
}

//! The rest of glibc's `<malloc.h>` under the preload (issue 16's fourth part): `mallopt`'s
//! answers and `malloc_info`'s XML, checked for glibc's shape (nesting, element names, the
//! attributes tools read) and for numbers that match what the program holds.

mod common;

use common::preload::{compile_c, run, target_dir};

/// One start or empty element: depth, name, attributes.
type Element = (usize, String, Vec<(String, String)>);

/// The XML's elements in order.
fn elements(xml: &str) -> Vec<Element> {
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    for line in xml.lines() {
        let l = line.trim();
        assert!(
            l.starts_with('<') && l.ends_with('>'),
            "not one element per line: {l:?}"
        );
        if let Some(name) = l.strip_prefix("</") {
            let name = name.trim_end_matches('>');
            assert_eq!(stack.pop().as_deref(), Some(name), "unbalanced </{name}>");
            continue;
        }
        let empty = l.ends_with("/>");
        let body = l
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim_end_matches('/');
        let (name, mut rest) = body.split_once(' ').unwrap_or((body, ""));
        let mut attrs = Vec::new();
        while let Some((k, v)) = rest.trim_start().split_once("=\"") {
            let (val, tail) = v.split_once('"').expect("closing quote");
            attrs.push((k.to_string(), val.to_string()));
            rest = tail;
        }
        assert!(rest.trim().is_empty(), "junk in {l:?}");
        out.push((stack.len(), name.to_string(), attrs));
        if !empty {
            stack.push(name.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    out
}

fn attr<'a>(a: &'a [(String, String)], k: &str) -> &'a str {
    a.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no attribute {k} in {a:?}"))
}

#[test]
fn mallopt_and_malloc_info() {
    let bin = compile_c("malloc_h.c", &target_dir().join("glibc-api-tests"));
    let out = run(&bin, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ok"),
        "{out:?}"
    );
    let xml = stdout
        .split_once("xml-begin\n")
        .and_then(|(_, r)| r.split_once("xml-end\n"))
        .map(|(x, _)| x)
        .expect("markers around the XML");
    let els = elements(xml);
    let (d, name, a) = &els[0];
    assert_eq!((*d, name.as_str(), attr(a, "version")), (0, "malloc", "1"));
    let heaps: Vec<_> = els.iter().filter(|e| e.1 == "heap").collect();
    assert_eq!(heaps.len(), 1, "one heap: {els:?}");
    assert_eq!(attr(&heaps[0].2, "nr"), "0");
    // The process totals sit directly under <malloc>.
    let top = |tag: &str, kind: &str| -> u64 {
        let e = els
            .iter()
            .find(|e| e.0 == 1 && e.1 == tag && attr(&e.2, "type") == kind)
            .unwrap_or_else(|| panic!("no top-level <{tag} type=\"{kind}\">: {els:?}"));
        attr(&e.2, "size").parse().expect("a number")
    };
    let mmap = els
        .iter()
        .find(|e| e.0 == 1 && e.1 == "total" && attr(&e.2, "type") == "mmap")
        .expect("total mmap");
    let count: u64 = attr(&mmap.2, "count").parse().expect("count");
    assert!(count >= 1, "the live 8 MiB block is not counted: {mmap:?}");
    assert!(top("total", "mmap") >= 8 << 20, "{mmap:?}");
    let current = top("system", "current");
    assert!(
        current >= 8 << 20,
        "system current {current}: the 8 MiB block is resident"
    );
    assert!(top("system", "max") >= current);
    let total = top("aspace", "total");
    assert!(total >= top("aspace", "mprotect") && total >= current);
    top("total", "fast");
    top("total", "rest");
}

//! The Rust allocation benches (see `rust/common.rs`) with snmalloc (crate `snmalloc-rs`) as the
//! global allocator: one binary per allocator, so that no two allocators share a heap.

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "rust/common.rs"]
mod common;

#[global_allocator]
static GLOBAL: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;

fn benches(c: &mut Criterion) {
    common::all(c, "snmalloc");
}

criterion_group! {
    name = group;
    config = common::config();
    targets = benches
}
criterion_main!(group);

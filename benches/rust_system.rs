//! The Rust allocation benches (see `rust/common.rs`) with the system allocator (`System`, i.e.
//! glibc `malloc`) as the global allocator: one binary per allocator, so that no two allocators
//! share a heap.

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "rust/common.rs"]
mod common;

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn benches(c: &mut Criterion) {
    common::all(c, "system");
}

criterion_group! {
    name = group;
    config = common::config();
    targets = benches
}
criterion_main!(group);

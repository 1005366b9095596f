//! hakmem-rs: the hakmem research allocator (call-site learning, BigCache, AllocHeader)
//! re-implemented in Rust beside a mimalloc-style pool fast path.
//!
//! Layers, each using only the ones listed before it (see ARCHITECTURE.md):
//! `os` → `header` → `pool` → `big` → `api` (front) → `global` / `ffi`.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod big;
pub mod diag;
pub mod ffi;
pub mod global;
pub mod header;
mod init;
pub mod lock;
pub mod os;
pub mod pool;
pub mod registry;
pub mod site;
pub mod size_class;
pub mod stats;
mod tls;

pub use api::{alloc_at, free_at};
pub use global::Hakmem;
pub use site::Site;

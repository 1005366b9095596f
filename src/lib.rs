//! hakmem-rs: the hakmem research allocator (call-site learning, BigCache, AllocHeader)
//! re-implemented in Rust beside a mimalloc-style pool fast path.
//!
//! Layers, each using only the ones listed before it (see ARCHITECTURE.md):
//! `os` → `header` → `pool` → `big` → `learn` → `config` → `front` / `api` → `global` / `ffi`.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod big;
pub mod config;
pub mod diag;
pub mod ffi;
pub mod front;
pub mod global;
pub mod header;
mod init;
pub mod learn;
pub mod lock;
pub mod os;
pub mod pool;
pub mod registry;
pub mod scenarios;
pub mod site;
pub mod size_class;
pub mod stats;
mod tls;
mod track;

pub use api::{alloc_at, free_at};
pub use front::{AutoFront, PoolFront, ReuseFront};
pub use global::Hakmem;
pub use site::Site;

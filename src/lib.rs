//! hakmem-rs: the hakmem research allocator (call-site learning, BigCache, AllocHeader)
//! re-implemented in Rust beside a mimalloc-style pool fast path.
//!
//! Layers, each using only the ones below it (ARCHITECTURE.md draws them; `tests/layers.rs`
//! checks every `crate::` path against the order):
//!
//! 1. base: `os`, `track`, `tls`, `lock`, `diag`, `config`
//! 2. pure pieces: `size_class`, `header`, `site`
//! 3. `pool` (segments, pages, heaps)
//! 4. `learn` (site table, ELO, UCB1, lifecycle)
//! 5. `big` (big blocks, registry, BigCache, madvise batch)
//! 6. `footprint` (resident bytes by holder), `stats`, then `init` (process and thread
//!    set-up, fork, exit report)
//! 7. `front` (auto / pool / reuse policy, the learned decision order, `api`)
//! 8. `global` (`GlobalAlloc`s), `ffi` (the C ABI)

#![deny(unsafe_op_in_unsafe_fn)]

pub mod big;
pub mod config;
pub(crate) mod diag;
pub mod ffi;
pub mod footprint;
pub mod front;
pub mod global;
pub mod header;
mod init;
pub mod learn;
pub(crate) mod lock;
pub(crate) mod os;
pub mod pool;
pub mod site;
pub(crate) mod size_class;
pub mod stats;
mod tls;
mod track;

pub use front::api::{alloc_at, free_at};
pub use global::{AutoFront, Hakmem, PoolFront, ReuseFront};
pub use site::Site;

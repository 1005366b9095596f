//! Layer 3: the pool model (mimalloc's): a thread-local heap → the current page of the
//! size class → pop the page's intrusive free list. No header, no hash, no lock.
//!
//! - `list`: the intrusive doubly linked list every pool list uses.
//! - `page`: a page record and its free list (links encoded and checked).
//! - `segment`: 4 MiB-aligned segments and the map that says which chunks are ours.
//! - `heap`: the thread-local heap: its owner-only part, its inbox, its counters.
//! - `pages`: a heap's page queues and segment lists.
//! - `free`: local frees, and remote frees batched per owning heap (the outbox).
//! - `collect`: the owner takes back the blocks other threads freed (the inbox).
//! - `alloc`: the pop, and the refill.
//! - `thread`: attaching a heap to a thread, parking it at exit, fork, validation.

pub mod alloc;
pub mod collect;
pub mod free;
pub mod heap;
pub mod list;
pub mod page;
pub mod pages;
pub mod segment;
pub mod thread;

pub use alloc::{alloc, alloc_bin};
pub use free::{free, usable_size};

//! Layer 3: the pool model (mimalloc's): a thread-local heap → the current page of the
//! size class → pop the page's intrusive free list. No header, no hash, no lock.
//!
//! - `list`: the intrusive doubly linked list every pool list uses.
//! - `segment`: 4 MiB-aligned segments and the map that says which chunks are ours.
//! - `page`: a page's free lists (local, and the atomic one other threads push to).
//! - `heap`: the thread-local heap: the fast paths, the slow paths, thread exit.

pub mod heap;
pub mod list;
pub mod page;
pub mod segment;

pub use heap::{alloc, alloc_bin, free, usable_size};

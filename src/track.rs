//! Telling valgrind's memcheck where the blocks are (cargo feature `valgrind`), as
//! mimalloc's `MI_TRACK_VALGRIND` does. Without the feature every function here is an
//! empty inline function: the fast paths do not change.
//!
//! hakmem never calls libc's `malloc`, so memcheck cannot see its blocks by itself: to it,
//! a segment is one big mapped, defined region. With the feature:
//! - a block handed out is announced with `MALLOCLIKE_BLOCK` (its requested size), and a
//!   block freed with `FREELIKE_BLOCK`: reads past the end, and uses after free, are
//!   reported against the block, with the stacks where it was allocated and freed;
//! - free memory is no-access: carved blocks, freed blocks, big-block headers. The
//!   allocator's own reads and writes of a free block's link word (and of a header) make
//!   those bytes accessible for the moment they are used, then no-access again.
//!
//! The requests are valgrind's "client requests": a magic instruction sequence that does
//! nothing on a real CPU (a rotate of `rdi` by 128 bits and `xchg rbx, rbx`), and that
//! valgrind's JIT recognises. Their numbers are those of `valgrind.h` and `memcheck.h`.

#[cfg(all(feature = "valgrind", target_arch = "x86_64"))]
mod imp {
    const MALLOCLIKE_BLOCK: usize = 0x1301;
    const FREELIKE_BLOCK: usize = 0x1302;
    const RESIZEINPLACE_BLOCK: usize = 0x130b;
    /// memcheck's tool base: ('M' << 24) | ('C' << 16).
    const MAKE_MEM_NOACCESS: usize = 0x4d43_0000;
    const MAKE_MEM_UNDEFINED: usize = 0x4d43_0001;
    const MAKE_MEM_DEFINED: usize = 0x4d43_0002;

    /// One client request; returns `default` when not running under valgrind.
    #[inline(always)]
    fn request(req: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> usize {
        let args: [usize; 6] = [req, a1, a2, a3, a4, 0];
        let result: usize;
        // SAFETY: the sequence leaves every register as it found it except rdx (declared)
        // and the flags (not preserved); valgrind reads `args` through rax.
        unsafe {
            core::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                inout("rdx") 0usize => result,
                in("rax") args.as_ptr(),
                options(nostack),
            );
        }
        result
    }

    pub fn malloc_like(p: *const u8, size: usize, zeroed: bool) {
        request(MALLOCLIKE_BLOCK, p as usize, size, 0, zeroed as usize);
    }
    pub fn free_like(p: *const u8) {
        request(FREELIKE_BLOCK, p as usize, 0, 0, 0);
    }
    pub fn resize_in_place(p: *const u8, old: usize, new: usize) {
        request(RESIZEINPLACE_BLOCK, p as usize, old, new, 0);
    }
    pub fn no_access(p: *const u8, len: usize) {
        request(MAKE_MEM_NOACCESS, p as usize, len, 0, 0);
    }
    pub fn undefined(p: *const u8, len: usize) {
        request(MAKE_MEM_UNDEFINED, p as usize, len, 0, 0);
    }
    pub fn defined(p: *const u8, len: usize) {
        request(MAKE_MEM_DEFINED, p as usize, len, 0, 0);
    }
}

#[cfg(not(all(feature = "valgrind", target_arch = "x86_64")))]
mod imp {
    #[inline(always)]
    pub fn malloc_like(_p: *const u8, _size: usize, _zeroed: bool) {}
    #[inline(always)]
    pub fn free_like(_p: *const u8) {}
    #[inline(always)]
    pub fn resize_in_place(_p: *const u8, _old: usize, _new: usize) {}
    #[inline(always)]
    pub fn no_access(_p: *const u8, _len: usize) {}
    #[inline(always)]
    pub fn undefined(_p: *const u8, _len: usize) {}
    #[inline(always)]
    pub fn defined(_p: *const u8, _len: usize) {}
}

/// `malloc_like(p, size, zeroed)`: `p` now holds a live block of `size` bytes (defined if
/// `zeroed`, else undefined). `free_like(p)`: the block at `p` is free (no-access).
/// `resize_in_place`: the block at `p` changed size without moving. `no_access`,
/// `undefined`, `defined`: memcheck's view of the bytes `[p, p + len)`.
pub(crate) use imp::{defined, free_like, malloc_like, no_access, resize_in_place, undefined};

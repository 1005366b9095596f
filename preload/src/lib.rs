//! `libhakmem.so`: the C allocation ABI over hakmem, for `LD_PRELOAD`. Each export is a
//! thin forward to `hakmem::ffi`.
//!
//! `malloc`, `calloc` and `realloc` also pass their caller's return address, the call-site
//! id of the learning layer. On x86-64 they are naked entry points that load it from the
//! stack top and tail-jump: two instructions (`mov` + `jmp`) over a plain forward.
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;
use hakmem::ffi;

#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // rdi = size; rsi = the return address at [rsp] on entry.
    core::arch::naked_asm!("mov rsi, qword ptr [rsp]", "jmp {f}", f = sym ffi::hak_malloc_from)
}

#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    ffi::hak_malloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the C contract of free.
    unsafe { ffi::hak_free(p) }
}

#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
    // rdi = n, rsi = m; rdx = the return address.
    core::arch::naked_asm!("mov rdx, qword ptr [rsp]", "jmp {f}", f = sym ffi::hak_calloc_from)
}

#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
    ffi::hak_calloc(n, m)
}

#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // rdi = p, rsi = size; rdx = the return address.
    core::arch::naked_asm!("mov rdx, qword ptr [rsp]", "jmp {f}", f = sym ffi::hak_realloc_from)
}

#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the C contract of realloc.
    unsafe { ffi::hak_realloc(p, size) }
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void {
    // SAFETY: the C contract of reallocarray.
    unsafe { ffi::hak_reallocarray(p, n, m) }
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    // SAFETY: the C contract of posix_memalign.
    unsafe { ffi::hak_posix_memalign(out, align, size) }
}

#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    ffi::hak_aligned_alloc(align, size)
}

#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    ffi::hak_memalign(align, size)
}

#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    ffi::hak_valloc(size)
}

#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    ffi::hak_pvalloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: the C contract of malloc_usable_size.
    unsafe { ffi::hak_malloc_usable_size(p) }
}

/// `_exit` (and `_Exit`): so that a process ending this way still writes its sites-mode
/// report (see `ffi::hak_exit`).
#[no_mangle]
pub extern "C" fn _exit(status: i32) -> ! {
    ffi::hak_exit(status)
}

#[no_mangle]
pub extern "C" fn _Exit(status: i32) -> ! {
    ffi::hak_exit(status)
}

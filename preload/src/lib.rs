//! `libhakmem.so`: the C allocation ABI over hakmem, for `LD_PRELOAD`. Each export is a
//! thin, inlined forward to `hakmem::ffi`.
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;
use hakmem::ffi;

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    ffi::hak_malloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: the C contract of free.
    unsafe { ffi::hak_free(p) }
}

#[no_mangle]
pub extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
    ffi::hak_calloc(n, m)
}

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

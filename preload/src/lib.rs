//! `libhakmem.so`: the C allocation ABI over hakmem, for `LD_PRELOAD`. Each export is a
//! thin forward to `hakmem::ffi`.
//!
//! Every allocating function (`malloc`, `calloc`, `realloc`, the aligned family, C++'s
//! `operator new`) also passes its caller's return address, the call-site id of the
//! learning layer. On x86-64 they are naked entry points that load it from the stack top
//! and tail-jump: two instructions (`mov` + `jmp`) over a plain forward.
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

// The rest of the family passes its caller too (x86-64: the return address into the first
// free argument register), so an aligned block is counted for its call site.

/// Naked forwards: `$name($args)` loads the return address into `$reg` and jumps to `$to`.
macro_rules! with_caller {
    ($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*) -> $r:ty, $reg:literal, $to:path, $plain:expr) => {
        $(#[$m])*
        #[cfg(target_arch = "x86_64")]
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            core::arch::naked_asm!(concat!("mov ", $reg, ", qword ptr [rsp]"), "jmp {f}", f = sym $to)
        }

        $(#[$m])*
        #[cfg(not(target_arch = "x86_64"))]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            // SAFETY: the C contract of the function, forwarded.
            unsafe { $plain }
        }
    };
}

with_caller!(fn reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void, "rcx",
    ffi::hak_reallocarray_from, ffi::hak_reallocarray(p, n, m));
with_caller!(fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32, "rcx",
    ffi::hak_posix_memalign_from, ffi::hak_posix_memalign(out, align, size));
with_caller!(fn aligned_alloc(align: usize, size: usize) -> *mut c_void, "rdx",
    ffi::hak_aligned_alloc_from, ffi::hak_aligned_alloc(align, size));
with_caller!(fn memalign(align: usize, size: usize) -> *mut c_void, "rdx",
    ffi::hak_memalign_from, ffi::hak_memalign(align, size));
with_caller!(fn valloc(size: usize) -> *mut c_void, "rsi",
    ffi::hak_valloc_from, ffi::hak_valloc(size));
with_caller!(fn pvalloc(size: usize) -> *mut c_void, "rsi",
    ffi::hak_pvalloc_from, ffi::hak_pvalloc(size));

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

// C++ `operator new` and `delete` (the Itanium C++ ABI's names), as tcmalloc and jemalloc
// export them: a `new` is served here directly, with the C++ code that called it as its
// call site (through libstdc++'s wrapper, every `new` of a program would be one site, in
// libstdc++). The aligned variants stay libstdc++'s, which call `aligned_alloc` and `free`.

/// `operator new(size_t)`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn _Znwm(size: usize) -> *mut c_void {
    core::arch::naked_asm!("mov rsi, qword ptr [rsp]", "jmp {f}", f = sym ffi::hak_new_from)
}

/// `operator new[](size_t)`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn _Znam(size: usize) -> *mut c_void {
    core::arch::naked_asm!("mov rsi, qword ptr [rsp]", "jmp {f}", f = sym ffi::hak_new_from)
}

/// `operator new(size_t, const std::nothrow_t&)`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn _ZnwmRKSt9nothrow_t(size: usize, _nothrow: *const c_void) -> *mut c_void {
    core::arch::naked_asm!(
        "mov rsi, qword ptr [rsp]",
        "jmp {f}",
        f = sym ffi::hak_new_nothrow_from
    )
}

/// `operator new[](size_t, const std::nothrow_t&)`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn _ZnamRKSt9nothrow_t(size: usize, _nothrow: *const c_void) -> *mut c_void {
    core::arch::naked_asm!(
        "mov rsi, qword ptr [rsp]",
        "jmp {f}",
        f = sym ffi::hak_new_nothrow_from
    )
}

/// `operator delete(void*)`, `delete[]`, the sized and nothrow forms: `free`.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn _ZdlPv(p: *mut c_void) {
    // SAFETY: the C++ contract of delete: p is null or from new.
    unsafe { ffi::hak_free(p) }
}

#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn _ZdaPv(p: *mut c_void) {
    // SAFETY: as `_ZdlPv`.
    unsafe { ffi::hak_free(p) }
}

#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvm(p: *mut c_void, _size: usize) {
    // SAFETY: as `_ZdlPv`.
    unsafe { ffi::hak_free(p) }
}

#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvm(p: *mut c_void, _size: usize) {
    // SAFETY: as `_ZdlPv`.
    unsafe { ffi::hak_free(p) }
}

#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn _ZdlPvRKSt9nothrow_t(p: *mut c_void, _nothrow: *const c_void) {
    // SAFETY: as `_ZdlPv`.
    unsafe { ffi::hak_free(p) }
}

#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn _ZdaPvRKSt9nothrow_t(p: *mut c_void, _nothrow: *const c_void) {
    // SAFETY: as `_ZdlPv`.
    unsafe { ffi::hak_free(p) }
}

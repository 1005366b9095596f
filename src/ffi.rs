//! Layer 8: the C allocation ABI, under `hak_` names. The `hakmem-preload` crate exports
//! them as `malloc`, `free`, ... in `libhakmem.so`; keeping the exported names out of this
//! library means no test or bench binary that links it gets its `malloc` replaced.
//!
//! Errors follow POSIX and glibc: NULL with `errno = ENOMEM` when memory cannot be had
//! (an overflowing `calloc` included), `EINVAL` for an alignment that is not a power of two
//! in `aligned_alloc` and `posix_memalign`; `memalign`, `valloc` and `pvalloc` take any
//! alignment as glibc does; `realloc(p, 0)` frees `p` and returns NULL, as glibc does.

use crate::config;
use crate::front::{api, census, cpath};
use crate::os::PAGE;
use crate::size_class::MIN_ALIGN;
use core::ffi::c_void;
use cpath::site;

/// C++ `operator new` (and `new[]`) called from code address `caller`: the C++ code that
/// asked is the call site, not libstdc++'s wrapper around `malloc`. On failure, as the
/// standard says: the installed new-handler is called and the allocation retried, and
/// without one `std::bad_alloc` is thrown (both looked up in the program's libstdc++, which
/// is loaded wherever `operator new` is called; without it, abort).
pub extern "C" fn hak_new_from(size: usize, caller: usize) -> *mut c_void {
    loop {
        let p = cpath::malloc(size, caller);
        if !p.is_null() {
            return p as *mut c_void;
        }
        match current_new_handler() {
            Some(handler) => handler(), // may free memory, throw, or end the process
            None => throw_bad_alloc(),
        }
    }
}

/// `operator new(size, std::nothrow)` (and `new[]`) called from `caller`: as the standard
/// says, on failure the installed new-handler is called and the allocation retried, and
/// null comes back only when there is no handler or it throws `std::bad_alloc`.
pub extern "C" fn hak_new_nothrow_from(size: usize, caller: usize) -> *mut c_void {
    let p = cpath::malloc(size, caller);
    if !p.is_null() {
        return p as *mut c_void;
    }
    nothrow_after_failure(size)
}

/// The nothrow `new`'s loop once an allocation failed. Without a handler: null. With one,
/// the handler may free memory (retry), end the process, or throw `std::bad_alloc`, which
/// nothrow `new` must catch, and catching a C++ exception takes C++: libstdc++'s own
/// nothrow `new` is exactly `try { return ::operator new(size); } catch (...) { return
/// nullptr; }`, and its `::operator new` is ours (`hak_new_from`, with the handler loop),
/// so the next definition after this library (`RTLD_NEXT`: libstdc++'s) runs the loop.
#[cold]
#[inline(never)]
fn nothrow_after_failure(size: usize) -> *mut c_void {
    if current_new_handler().is_none() {
        return core::ptr::null_mut();
    }
    // SAFETY: a NUL-terminated name; RTLD_NEXT searches the modules after this one.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, c"_ZnwmRKSt9nothrow_t".as_ptr()) };
    if !next.is_null() {
        type NothrowNew = extern "C" fn(usize, *const u8) -> *mut c_void;
        // SAFETY: `operator new(std::size_t, const std::nothrow_t&)`: the tag is an empty
        // struct passed by reference, never read.
        let next = unsafe { core::mem::transmute::<*mut c_void, NothrowNew>(next) };
        static NOTHROW_TAG: u8 = 0;
        return next(size, &NOTHROW_TAG);
    }
    // No C++ runtime after this library to catch for us (the handler came from one linked
    // otherwise): the loop without the catch. A handler that throws then throws through.
    loop {
        match current_new_handler() {
            Some(handler) => handler(),
            None => return core::ptr::null_mut(),
        }
        let p = cpath::malloc(size, 0);
        if !p.is_null() {
            return p as *mut c_void;
        }
    }
}

/// The installed C++ new-handler (`std::get_new_handler()`), if the program has libstdc++
/// and a handler is set.
fn current_new_handler() -> Option<extern "C" fn()> {
    type GetNewHandler = extern "C" fn() -> Option<extern "C" fn()>;
    let get = cxx_symbol(c"_ZSt15get_new_handlerv")?;
    // SAFETY: std::get_new_handler(): no arguments, returns a function pointer or null.
    let get = unsafe { core::mem::transmute::<*mut c_void, GetNewHandler>(get) };
    get()
}

/// A libstdc++ function by its mangled name, from the loaded program.
fn cxx_symbol(name: &core::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches the loaded modules.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!f.is_null()).then_some(f)
}

fn throw_bad_alloc() -> ! {
    if let Some(f) = cxx_symbol(c"_ZSt17__throw_bad_allocv") {
        // SAFETY: std::__throw_bad_alloc(): no arguments, never returns (it throws).
        let throw = unsafe { core::mem::transmute::<*mut c_void, extern "C" fn() -> !>(f) };
        throw();
    }
    crate::diag::eprint_line(format_args!(
        "hakmem: operator new: out of memory, and no libstdc++ to throw std::bad_alloc"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// `_exit` and `_Exit`: in the sites mode, the exit report first (a process that ends
/// with `_exit`, as a forked child or `dash` does, skips the destructors that write it),
/// then the process ends as `_exit` ends it. Outside the sites mode, only the latter.
/// `_exit` is async-signal-safe, and so is this: the report waits for no lock an
/// interrupted thread may hold (see `stats::report_at_exit`), a configuration not read yet
/// means no sites mode, and a `vfork` child writes no report (its parent's memory).
pub extern "C" fn hak_exit(status: i32) -> ! {
    if config::get_if_loaded().is_some_and(|c| c.sites) {
        crate::stats::report_from_exit();
    }
    loop {
        // SAFETY: exit_group has no preconditions and does not return.
        unsafe { libc::syscall(libc::SYS_exit_group, status as libc::c_long) };
    }
}

#[inline]
fn set_errno(e: i32) {
    // SAFETY: errno is this thread's and always writable.
    unsafe { *libc::__errno_location() = e };
}

#[inline]
fn oom(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p as *mut c_void
}

#[inline(always)]
pub extern "C" fn hak_malloc(size: usize) -> *mut c_void {
    hak_malloc_from(size, 0)
}

/// `malloc` called from code address `caller` (0: unknown), the call site's id. (`errno`
/// is set on its out-of-line path.)
#[inline(always)]
pub extern "C" fn hak_malloc_from(size: usize, caller: usize) -> *mut c_void {
    cpath::malloc(size, caller) as *mut c_void
}

/// # Safety
/// `p` must be null or a live block of this allocator.
#[inline(always)]
pub unsafe extern "C" fn hak_free(p: *mut c_void) {
    // SAFETY: forwarded.
    unsafe { cpath::free(p as *mut u8) }
}

pub extern "C" fn hak_calloc(n: usize, m: usize) -> *mut c_void {
    hak_calloc_from(n, m, 0)
}

pub extern "C" fn hak_calloc_from(n: usize, m: usize, caller: usize) -> *mut c_void {
    let p = api::calloc_at(n, m, site(caller));
    if config::get().sites {
        census::record_alloc(caller, n.saturating_mul(m), p);
    }
    oom(p)
}

/// # Safety
/// `p` must be null or a live block of this allocator.
pub unsafe extern "C" fn hak_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { hak_realloc_from(p, size, 0) }
}

/// # Safety
/// As `hak_realloc`.
pub unsafe extern "C" fn hak_realloc_from(
    p: *mut c_void,
    size: usize,
    caller: usize,
) -> *mut c_void {
    if size == 0 && !p.is_null() {
        // SAFETY: forwarded.
        unsafe { hak_free(p) };
        return core::ptr::null_mut();
    }
    if config::get().sites {
        // The sites mode counts the move as a new block of this site and the old one freed.
        // SAFETY: forwarded.
        return unsafe { realloc_counted(p as *mut u8, size, caller) } as *mut c_void;
    }
    // SAFETY: forwarded.
    oom(unsafe { api::realloc_at(p as *mut u8, size, site(caller)) })
}

/// `realloc` in the sites mode: a new block counted for `caller`, the contents copied, the
/// old block freed (counted for its own site). Null with `errno` when out of memory.
/// The census counts the old block's free before the new block's allocation (as heaptrack
/// does): the program never holds both, so the heap's peak must not count both.
///
/// # Safety
/// `p` must be null or a live block of this allocator.
unsafe fn realloc_counted(p: *mut u8, size: usize, caller: usize) -> *mut u8 {
    let lent = census::lend_big(p);
    let q = api::malloc_at(size, site(caller));
    if q.is_null() {
        census::put_back(lent);
        set_errno(libc::ENOMEM);
        return q;
    }
    if !p.is_null() {
        // SAFETY: `p` is live with at least its usable size; `q` holds `size` bytes; the
        // census reads `p`'s header before the free below.
        unsafe {
            let old = api::usable_size(p);
            core::ptr::copy_nonoverlapping(p, q, old.min(size));
            census::record_free(p);
        }
    }
    census::record_alloc(caller, size, q);
    census::put_back(lent);
    if !p.is_null() {
        // SAFETY: `p` is live and counted as freed above.
        unsafe { cpath::free_uncounted(p) };
    }
    q
}

/// # Safety
/// As `hak_realloc`.
pub unsafe extern "C" fn hak_reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { hak_reallocarray_from(p, n, m, 0) }
}

/// `reallocarray` called from code address `caller`.
///
/// # Safety
/// As `hak_realloc`.
pub unsafe extern "C" fn hak_reallocarray_from(
    p: *mut c_void,
    n: usize,
    m: usize,
    caller: usize,
) -> *mut c_void {
    match n.checked_mul(m) {
        // SAFETY: forwarded.
        Some(size) => unsafe { hak_realloc_from(p, size, caller) },
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// An aligned block for `caller` (0: unknown), counted in the sites mode; null when out of
/// memory (callers set `errno` or return the code).
fn aligned_at(size: usize, align: usize, caller: usize) -> *mut u8 {
    let p = api::malloc_aligned(size, align, site(caller));
    if config::get().sites {
        census::record_alloc(caller, size, p);
    }
    p
}

/// `aligned_alloc`: C11 and glibc 2.38 refuse an alignment that is not a power of two.
fn aligned(align: usize, size: usize, caller: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    oom(aligned_at(size, align, caller))
}

/// `memalign` as glibc has it: any alignment is taken, raised to at least `MIN_ALIGN` and
/// to the next power of two; only one past the largest power of two fails (EINVAL).
fn memalign_like_glibc(align: usize, size: usize, caller: usize) -> *mut c_void {
    match align.max(MIN_ALIGN).checked_next_power_of_two() {
        Some(a) => oom(aligned_at(size, a, caller)),
        None => {
            set_errno(libc::EINVAL);
            core::ptr::null_mut()
        }
    }
}

/// # Safety
/// `out` must be valid for a pointer write.
pub unsafe extern "C" fn hak_posix_memalign(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
) -> libc::c_int {
    // SAFETY: forwarded.
    unsafe { hak_posix_memalign_from(out, align, size, 0) }
}

/// `posix_memalign` called from code address `caller`.
///
/// # Safety
/// `out` must be valid for a pointer write.
pub unsafe extern "C" fn hak_posix_memalign_from(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
    caller: usize,
) -> libc::c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let p = aligned_at(size, align, caller);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { *out = p as *mut c_void };
    0
}

pub extern "C" fn hak_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    aligned(align, size, 0)
}

pub extern "C" fn hak_aligned_alloc_from(align: usize, size: usize, caller: usize) -> *mut c_void {
    aligned(align, size, caller)
}

pub extern "C" fn hak_memalign(align: usize, size: usize) -> *mut c_void {
    memalign_like_glibc(align, size, 0)
}

pub extern "C" fn hak_memalign_from(align: usize, size: usize, caller: usize) -> *mut c_void {
    memalign_like_glibc(align, size, caller)
}

pub extern "C" fn hak_valloc(size: usize) -> *mut c_void {
    memalign_like_glibc(PAGE, size, 0)
}

pub extern "C" fn hak_valloc_from(size: usize, caller: usize) -> *mut c_void {
    memalign_like_glibc(PAGE, size, caller)
}

pub extern "C" fn hak_pvalloc(size: usize) -> *mut c_void {
    hak_pvalloc_from(size, 0)
}

/// `pvalloc`: whole pages (at least one), page-aligned.
pub extern "C" fn hak_pvalloc_from(size: usize, caller: usize) -> *mut c_void {
    match size.max(1).checked_next_multiple_of(PAGE) {
        Some(rounded) => memalign_like_glibc(PAGE, rounded, caller),
        None => oom(core::ptr::null_mut()),
    }
}

/// # Safety
/// `p` must be null or a live block of this allocator.
pub unsafe extern "C" fn hak_malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: forwarded.
    unsafe { api::usable_size(p as *mut u8) }
}

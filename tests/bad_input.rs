//! Defined behaviour on bad input, through the C ABI (`hakmem::ffi`, exported as `malloc`
//! & co. by libhakmem.so) and the Rust API. The cases that must abort run in a child
//! process, and the test checks the one line they print.

use hakmem::ffi::*;
use hakmem::{alloc_at, free_at, Site};
use std::alloc::Layout;
use std::ffi::c_void;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::ptr;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn clear_errno() {
    unsafe { *libc::__errno_location() = 0 };
}

#[test]
fn malloc_zero_gives_unique_freeable_pointers() {
    let a = hak_malloc(0);
    let b = hak_malloc(0);
    assert!(!a.is_null() && !b.is_null() && a != b);
    assert_eq!(a as usize % 16, 0);
    unsafe {
        assert!(hak_malloc_usable_size(a) >= 1);
        hak_free(a);
        hak_free(b);
    }
}

#[test]
fn free_null_and_usable_size_null_do_nothing() {
    unsafe {
        hak_free(ptr::null_mut());
        assert_eq!(hak_malloc_usable_size(ptr::null_mut()), 0);
    }
}

#[test]
fn impossible_sizes_return_null_with_enomem() {
    for size in [usize::MAX, usize::MAX / 2, isize::MAX as usize] {
        clear_errno();
        assert!(hak_malloc(size).is_null(), "malloc({size})");
        assert_eq!(errno(), libc::ENOMEM);
    }
    clear_errno();
    assert!(hak_calloc(usize::MAX / 2, 3).is_null(), "calloc overflow");
    assert_eq!(errno(), libc::ENOMEM);
    clear_errno();
    assert!(hak_calloc(1 << 33, 1 << 33).is_null(), "calloc overflow");
    assert_eq!(errno(), libc::ENOMEM);
    let p = hak_malloc(100);
    clear_errno();
    assert!(unsafe { hak_reallocarray(p, usize::MAX, 2) }.is_null());
    assert_eq!(errno(), libc::ENOMEM);
    clear_errno();
    assert!(unsafe { hak_realloc(p, usize::MAX) }.is_null());
    assert_eq!(errno(), libc::ENOMEM);
    unsafe { hak_free(p) }; // p survived both failures
}

#[test]
fn calloc_returns_zeroed_memory_even_when_reusing_blocks() {
    for size in [1usize, 24, 1000, 40_000, 300_000] {
        let p = hak_malloc(size) as *mut u8;
        unsafe {
            ptr::write_bytes(p, 0xAB, size);
            hak_free(p as *mut c_void);
        }
        let q = hak_calloc(size, 1) as *mut u8;
        assert!(unsafe { std::slice::from_raw_parts(q, size) }
            .iter()
            .all(|&b| b == 0));
        unsafe { hak_free(q as *mut c_void) };
    }
}

#[test]
fn posix_memalign_rejects_bad_alignments_with_einval() {
    let mut p: *mut c_void = ptr::null_mut();
    for align in [0usize, 1, 2, 4, 3, 24, 48, 1000, usize::MAX] {
        assert_eq!(
            unsafe { hak_posix_memalign(&mut p, align, 64) },
            libc::EINVAL,
            "align {align}"
        );
    }
    assert!(p.is_null(), "no pointer written on error");
    assert_eq!(
        unsafe { hak_posix_memalign(&mut p, 64, usize::MAX) },
        libc::ENOMEM
    );
}

#[test]
fn aligned_alloc_and_memalign_reject_non_powers_of_two() {
    for align in [0usize, 3, 24, 1000] {
        clear_errno();
        assert!(
            hak_aligned_alloc(align, 64).is_null(),
            "aligned_alloc({align})"
        );
        assert_eq!(errno(), libc::EINVAL);
        clear_errno();
        assert!(hak_memalign(align, 64).is_null(), "memalign({align})");
        assert_eq!(errno(), libc::EINVAL);
    }
}

#[test]
fn alignments_up_to_16_mib_are_honoured_for_small_and_big_sizes() {
    let mut align = 8usize;
    while align <= 16 << 20 {
        for size in [1usize, 100, 5000, 70_000, 3 << 20] {
            let mut p: *mut c_void = ptr::null_mut();
            assert_eq!(unsafe { hak_posix_memalign(&mut p, align, size) }, 0);
            assert_eq!(
                p as usize % align,
                0,
                "posix_memalign({align}, {size}) = {p:p}"
            );
            let q = hak_aligned_alloc(align, size);
            assert_eq!(
                q as usize % align,
                0,
                "aligned_alloc({align}, {size}) = {q:p}"
            );
            unsafe {
                assert!(hak_malloc_usable_size(p) >= size);
                ptr::write_bytes(p as *mut u8, 1, size);
                ptr::write_bytes(q as *mut u8, 2, size);
                hak_free(p);
                hak_free(q);
            }
        }
        align *= 2;
    }
    let v = hak_valloc(10);
    let pv = hak_pvalloc(5000);
    assert_eq!((v as usize % 4096, pv as usize % 4096), (0, 0));
    assert!(unsafe { hak_malloc_usable_size(pv) } >= 8192);
    unsafe {
        hak_free(v);
        hak_free(pv);
    }
}

#[test]
fn realloc_edge_cases_follow_glibc() {
    unsafe {
        let p = hak_realloc(ptr::null_mut(), 40) as *mut u8; // realloc(NULL, n) == malloc(n)
        assert!(!p.is_null());
        ptr::write_bytes(p, 9, 40);
        // Grow across the pool/big boundary and back; contents follow.
        let q = hak_realloc(p as *mut c_void, 1 << 20) as *mut u8;
        assert!(std::slice::from_raw_parts(q, 40).iter().all(|&b| b == 9));
        let r = hak_realloc(q as *mut c_void, 3 << 20) as *mut u8; // mremap growth
        assert!(std::slice::from_raw_parts(r, 40).iter().all(|&b| b == 9));
        let s = hak_realloc(r as *mut c_void, 20) as *mut u8;
        assert!(std::slice::from_raw_parts(s, 20).iter().all(|&b| b == 9));
        assert!(
            hak_realloc(s as *mut c_void, 0).is_null(),
            "realloc(p, 0) frees, returns NULL"
        );
    }
}

#[test]
fn rust_api_takes_call_sites_and_honours_layouts() {
    for (size, align) in [
        (0usize, 1usize),
        (1, 1),
        (33, 32),
        (4096, 4096),
        (1 << 21, 64),
        (100, 1 << 20),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let p = alloc_at(layout, Site::here());
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0);
        unsafe {
            ptr::write_bytes(p, 0x5A, size);
            free_at(p, layout);
        }
    }
    let huge = Layout::from_size_align(isize::MAX as usize - 4096, 16).unwrap();
    assert!(alloc_at(huge, Site::UNKNOWN).is_null());
}

// ---------------------------------------------------------------------------------------
// Aborting cases: a child process runs one, the parent checks the signal and the line.
// ---------------------------------------------------------------------------------------

const CHILD_ENV: &str = "HAKMEM_BAD_INPUT_CHILD";

/// Entry point of the child processes; does nothing in a normal test run.
#[test]
fn child_entry() {
    let Ok(case) = std::env::var(CHILD_ENV) else {
        return;
    };
    unsafe {
        match case.as_str() {
            "foreign_free" => {
                // This test binary's global allocator is glibc's: a foreign pointer.
                let b = Box::into_raw(Box::new([0u8; 64])) as *mut c_void;
                hak_free(b);
            }
            "stack_free" => {
                let mut x = 0u64;
                hak_free(&mut x as *mut u64 as *mut c_void);
            }
            "big_double_free" => {
                let p = hak_malloc(1 << 20);
                hak_free(p);
                hak_free(p);
            }
            "small_double_free" => {
                let p = hak_malloc(48);
                hak_free(p);
                hak_free(p);
            }
            "interior_free" => {
                // A pointer into the middle of a big block is not a block of ours.
                let p = hak_malloc(1 << 20) as *mut u8;
                hak_free(p.add(4096) as *mut c_void);
            }
            "foreign_realloc" => {
                let b = Box::into_raw(Box::new([0u8; 64])) as *mut c_void;
                hak_realloc(b, 100);
            }
            "foreign_usable_size" => {
                let b = Box::into_raw(Box::new([0u8; 64])) as *mut c_void;
                hak_malloc_usable_size(b);
            }
            other => panic!("unknown case {other}"),
        }
    }
    std::process::exit(0); // not reached when the allocator aborts
}

fn run_child(case: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .output()
        .unwrap();
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_aborts_naming_pointer(case: &str, op: &str) {
    let (signal, stderr) = run_child(case);
    assert_eq!(
        signal,
        Some(libc::SIGABRT),
        "{case}: expected abort, stderr: {stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("hakmem: "))
        .unwrap_or_else(|| panic!("{case}: no hakmem line in {stderr}"));
    assert!(
        line.starts_with(&format!("hakmem: {op}(): invalid pointer 0x")),
        "{case}: {line}"
    );
}

#[test]
fn freeing_a_foreign_heap_pointer_aborts_with_a_clear_line() {
    assert_aborts_naming_pointer("foreign_free", "free");
}

#[test]
fn freeing_a_stack_pointer_aborts_with_a_clear_line() {
    assert_aborts_naming_pointer("stack_free", "free");
}

#[test]
fn freeing_a_big_block_twice_aborts_with_a_clear_line() {
    assert_aborts_naming_pointer("big_double_free", "free");
}

#[test]
fn freeing_a_small_block_twice_aborts_with_a_clear_line() {
    let (signal, stderr) = run_child("small_double_free");
    assert_eq!(signal, Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("hakmem: free(): invalid pointer 0x") && stderr.contains("double free"),
        "{stderr}"
    );
}

#[test]
fn freeing_a_pointer_into_a_big_block_aborts() {
    assert_aborts_naming_pointer("interior_free", "free");
}

#[test]
fn realloc_and_usable_size_of_foreign_pointers_abort() {
    assert_aborts_naming_pointer("foreign_realloc", "realloc");
    assert_aborts_naming_pointer("foreign_usable_size", "malloc_usable_size");
}

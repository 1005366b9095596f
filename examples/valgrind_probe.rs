//! A Rust program whose global allocator is hakmem, built with the `valgrind` feature, for
//! `tests/valgrind.rs`: memcheck must see hakmem's blocks.
//!
//! `valgrind_probe clean`: ordinary work (vectors, strings, a map, threads, a big buffer
//! grown by realloc), which must be free of errors; `overrun`: a read one byte past a
//! 64-byte block; `use-after-free`: a read inside a freed 200-byte block.

use hakmem::Hakmem;
use std::collections::HashMap;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: Hakmem = Hakmem;

fn clean() {
    let mut words: HashMap<String, usize> = HashMap::new();
    for i in 0..5000 {
        *words.entry(format!("w{}", i % 700)).or_default() += i;
    }
    let mut v: Vec<u64> = Vec::new();
    for i in 0..200_000u64 {
        v.push(i); // grows through small, medium and big blocks (realloc)
    }
    let handles: Vec<_> = (0..3)
        .map(|t| std::thread::spawn(move || (0..2000).map(|i| vec![t as u8; i % 300]).count()))
        .collect();
    let n: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let big = vec![7u8; 3 << 20];
    println!(
        "clean {} {} {} {}",
        words.len(),
        v.iter().sum::<u64>(),
        n,
        big[(3 << 20) - 1]
    );
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let block = Box::into_raw(Box::new([1u8; 64])) as *mut u8;
    match mode.as_str() {
        "clean" => clean(),
        "overrun" => {
            // SAFETY: none: this read is the error memcheck must report.
            let b = unsafe { std::ptr::read_volatile(black_box(block).add(64)) };
            println!("read {b}");
        }
        "use-after-free" => {
            // A size class the runtime's start-up did not use, so that no earlier freed
            // block at this address (hakmem reuses addresses at once; memcheck remembers
            // every recent free) can be the one memcheck names.
            let block = Box::into_raw(Box::new([2u8; 200])) as *mut u8;
            // SAFETY: `block` came from Box::into_raw just above.
            drop(unsafe { Box::from_raw(block as *mut [u8; 200]) });
            // SAFETY: none: this read is the error memcheck must report.
            let b = unsafe { std::ptr::read_volatile(black_box(block).add(8)) };
            println!("read {b}");
        }
        _ => eprintln!("usage: valgrind_probe clean|overrun|use-after-free"),
    }
}

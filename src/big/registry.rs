//! The set of live big-block pointers: how `free` tells a big block of ours from a
//! foreign pointer (or one already freed) without reading memory that may not be mapped.
//! An open-addressing hash set in its own mapping. Changes (a block mapped, released or
//! moved) take a spin lock; lookups take none: they read the table as a seqlock reader
//! (the version is odd while a change is under way, and a lookup that saw it change
//! looks again).
//!
//! A lookup reads one pointer, `CURRENT`, to an array that carries its own capacity in its
//! first word, and probes only that array, within that capacity: an array and its size are
//! never read apart (two loads, of an array and of a capacity, could pair the old array
//! with the new, doubled capacity while the table grows). An outgrown array is never
//! unmapped, only emptied with `MADV_DONTNEED`, so a lookup still reading it reads zeros
//! (a capacity of 0: nothing found) rather than unmapped memory, and its version check
//! sends it round again. The outgrown arrays add up to less than the current one (each is
//! half the next), so keeping their address space costs at most as much as the table.

use crate::lock::SpinLock;
use crate::os;
use core::ptr;
use core::sync::atomic::{
    fence, AtomicPtr, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// A slot array: its capacity (a power of two), then that many slots (0: empty).
#[repr(C)]
struct Slots {
    cap: AtomicUsize,
    slots: [AtomicUsize; 0],
}

impl Slots {
    /// A zeroed array for `cap` slots in a mapping of its own; null when out of memory.
    /// (Test builds put an inaccessible page after it, so a read past it faults.)
    fn map(cap: usize) -> *mut Slots {
        let bytes = (cap + 1) * 8;
        let guard = if cfg!(test) { os::PAGE } else { 0 };
        let p = os::map(0, os::round_up(bytes, os::PAGE) + guard) as *mut Slots;
        if p.is_null() {
            return p;
        }
        if guard != 0 {
            let end = (p as usize + os::round_up(bytes, os::PAGE)) as *mut libc::c_void;
            // SAFETY: the guard page is the last page of our fresh mapping.
            unsafe { libc::mprotect(end, guard, libc::PROT_NONE) };
        }
        // SAFETY: a fresh mapping with room for the header.
        unsafe { (*p).cap.store(cap, Relaxed) };
        p
    }

    /// Slot `i` (`i < cap`) of the array at `s`.
    ///
    /// # Safety
    /// `s` is a mapped array (see `Slots::map`) whose capacity exceeds `i`.
    unsafe fn slot<'a>(s: *const Slots, i: usize) -> &'a AtomicUsize {
        // SAFETY: per the caller, the slot lies inside the mapping.
        unsafe { &*(&raw const (*s).slots).cast::<AtomicUsize>().add(i) }
    }
}

struct Table {
    slots: *mut Slots,
    cap: usize,
    len: usize,
}
// SAFETY: the slot array is changed only under the lock (readers only load from it).
unsafe impl Send for Table {}

static TABLE: SpinLock<Table> = SpinLock::new(
    crate::lock::rank::REGISTRY,
    Table {
        slots: ptr::null_mut(),
        cap: 0,
        len: 0,
    },
);
/// What lookups read: the current slot array (null: none yet), and the change count (odd
/// while a change is under way).
static CURRENT: AtomicPtr<Slots> = AtomicPtr::new(ptr::null_mut());
static VERSION: AtomicUsize = AtomicUsize::new(0);

const MIN_CAP: usize = 1024;

/// Fibonacci hashing of the pointer without its always-zero low bits.
fn home(key: usize, cap: usize) -> usize {
    let h = ((key >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - cap.trailing_zeros())) as usize
}

/// Whether `key` is in the array at `slots` (null: none), read within the capacity that
/// array holds. At most `cap` probes: a lookup racing a change may see a torn table, and
/// the version check then sends it round again.
fn probe(slots: *const Slots, key: usize) -> bool {
    // 0 marks an empty slot: null is never a block (without this test, `contains(null)`
    // found the first empty slot).
    if slots.is_null() || key == 0 {
        return false;
    }
    // SAFETY: arrays are never unmapped; the capacity is read once, from the array itself.
    let cap = unsafe { (*slots).cap.load(Relaxed) };
    if cap == 0 {
        return false; // an outgrown array, emptied
    }
    let mut i = home(key, cap);
    for _ in 0..cap {
        // SAFETY: i < cap, the array's own capacity.
        let v = unsafe { Slots::slot(slots, i) }.load(Relaxed);
        if v == key {
            return true;
        }
        if v == 0 {
            return false;
        }
        i = (i + 1) & (cap - 1);
    }
    false
}

/// A change in progress: the version is odd from `begin` until the guard drops.
struct Change;

impl Change {
    fn begin() -> Change {
        let v = VERSION.load(Relaxed);
        VERSION.store(v + 1, Relaxed);
        fence(Release);
        Change
    }
}

impl Drop for Change {
    fn drop(&mut self) {
        VERSION.fetch_add(1, Release);
    }
}

impl Table {
    fn slot(&self, i: usize) -> &AtomicUsize {
        // SAFETY: callers pass i < cap; the slot array holds cap entries.
        unsafe { Slots::slot(self.slots, i) }
    }

    fn find(&self, key: usize) -> Option<usize> {
        if self.cap == 0 {
            return None;
        }
        let mask = self.cap - 1;
        let mut i = home(key, self.cap);
        loop {
            let v = self.slot(i).load(Relaxed);
            if v == key {
                return Some(i);
            }
            if v == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) -> bool {
        let new_cap = if self.cap == 0 { MIN_CAP } else { self.cap * 2 };
        let slots = Slots::map(new_cap);
        if slots.is_null() {
            return false;
        }
        let old = Table {
            slots: self.slots,
            cap: self.cap,
            len: self.len,
        };
        // Filled before lookups can see it.
        let mut new = Table {
            slots,
            cap: new_cap,
            len: 0,
        };
        for i in 0..old.cap {
            let v = old.slot(i).load(Relaxed);
            if v != 0 {
                new.put(v);
            }
        }
        {
            let _change = Change::begin();
            *self = new;
            // The array and its capacity in one pointer (filled before it is published).
            CURRENT.store(slots, Release);
        }
        if old.cap != 0 {
            // A lookup may still be reading the old array: it stays mapped, its pages
            // given back (it reads zeros there, capacity included, and its version check
            // fails). A refusal is counted and leaves the old array's pages resident.
            // SAFETY: the old array is ours and nothing writes it any more.
            unsafe { os::advise(old.slots.cast(), (old.cap + 1) * 8, libc::MADV_DONTNEED) };
        }
        true
    }

    /// Inserts a key known to be absent, with room guaranteed.
    fn put(&mut self, key: usize) {
        let mask = self.cap - 1;
        let mut i = home(key, self.cap);
        // The load factor stays <= 1/2, so a free slot exists.
        while self.slot(i).load(Relaxed) != 0 {
            i = (i + 1) & mask;
        }
        self.slot(i).store(key, Relaxed);
        self.len += 1;
    }

    /// Linear-probing deletion by backward shift: no tombstones, probes stay short.
    fn delete_at(&mut self, mut hole: usize) {
        let mask = self.cap - 1;
        let mut j = hole;
        self.slot(hole).store(0, Relaxed);
        loop {
            j = (j + 1) & mask;
            let v = self.slot(j).load(Relaxed);
            if v == 0 {
                break;
            }
            let k = home(v, self.cap);
            // Move `v` into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < k && k <= j
            } else {
                hole < k || k <= j
            };
            if !stays {
                self.slot(hole).store(v, Relaxed);
                self.slot(j).store(0, Relaxed);
                hole = j;
            }
        }
        self.len -= 1;
    }
}

/// Records a new big block. False when the table cannot grow (out of memory).
pub fn insert(p: *mut u8) -> bool {
    let mut t = TABLE.lock();
    if (t.len + 1) * 2 > t.cap && !t.grow() {
        return false;
    }
    let _change = Change::begin();
    t.put(p as usize);
    true
}

/// Forgets a big block; false when it was not recorded.
pub fn remove(p: *mut u8) -> bool {
    let mut t = TABLE.lock();
    match t.find(p as usize) {
        Some(i) => {
            let _change = Change::begin();
            t.delete_at(i);
            true
        }
        None => false,
    }
}

/// Moves the record of `old` to wherever `relocate` puts the block (`mremap`), with the
/// lock held throughout: between the move and the record, no other thread can map,
/// record and free a block at the old address. `relocate` returns the block's new address,
/// or null when it could not move it (the record stays). It must not take a lock.
pub fn relocate(old: *mut u8, relocate: impl FnOnce() -> *mut u8) -> *mut u8 {
    let mut t = TABLE.lock();
    let new = relocate();
    if !new.is_null() && new != old {
        if let Some(i) = t.find(old as usize) {
            let _change = Change::begin();
            t.delete_at(i);
            t.put(new as usize); // the deletion made room
        }
    }
    new
}

/// Whether `p` is a recorded big block. Takes no lock: reads the table between two
/// readings of the version, and again if a change came in between.
pub fn contains(p: *const u8) -> bool {
    loop {
        let v = VERSION.load(Acquire);
        if v & 1 == 0 {
            let slots = CURRENT.load(Acquire);
            #[cfg(test)]
            tests::between_loads();
            let found = probe(slots, p as usize);
            fence(Acquire);
            if VERSION.load(Relaxed) == v {
                return found;
            }
        }
        core::hint::spin_loop();
    }
}

/// Calls `f` with every recorded big block, holding the table (so no block is released
/// meanwhile: `release` removes a block from here before it unmaps it), and with the bytes
/// of the table's array. False, having called nothing, when the table stayed busy for
/// `wait_ns` (a report from a signal handler must not wait forever).
pub fn for_each_locked(
    wait_ns: u64,
    mut f: impl FnMut(*mut u8),
    array: impl FnOnce(*const u8, usize),
) -> bool {
    let Some(t) = TABLE.try_lock_within(wait_ns) else {
        return false;
    };
    for i in 0..t.cap {
        // SAFETY: `i` is below the capacity of the array the table holds.
        let key = unsafe { Slots::slot(t.slots, i) }.load(Relaxed);
        if key != 0 {
            f(key as *mut u8);
        }
    }
    if !t.slots.is_null() {
        array(t.slots as *const u8, (t.cap + 1) * 8);
    }
    true
}

pub fn lock_for_fork() {
    TABLE.lock_forever();
}

/// # Safety
/// Only after `lock_for_fork` on this thread.
pub unsafe fn unlock_after_fork() {
    // SAFETY: forwarded.
    unsafe { TABLE.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    std::thread_local! {
        /// What this thread's next lookup runs between loading the array and probing it.
        static BETWEEN: Cell<Option<fn()>> = const { Cell::new(None) };
    }

    pub(super) fn between_loads() {
        if let Some(f) = BETWEEN.with(|b| b.take()) {
            f();
        }
    }

    fn current_cap() -> usize {
        TABLE.lock().cap
    }

    /// A key whose home in a table of `cap` slots lies in its upper half: a lookup that
    /// paired an array of `cap / 2` slots with the capacity `cap` would read past it.
    fn key_homed_past(cap: usize) -> usize {
        (0..)
            .map(|i| 0x6600_0000_0000usize + i * 4096 + 32)
            .find(|&k| home(k, cap) >= cap / 2 + cap / 4)
            .unwrap()
    }

    /// A lookup that loaded the array just before the table grew reads that array within
    /// its own capacity (test builds fault on a read past an array), answers again from
    /// the new one, and finds what it looks for. Before, the array and the capacity were
    /// two loads, and this lookup read the old array with the doubled capacity.
    #[test]
    fn a_lookup_across_a_growth_reads_only_the_array_it_loaded() {
        std::thread_local! {
            static GROWN: Cell<usize> = const { Cell::new(0) };
        }
        // Make sure a table exists, then find the capacity it will grow to.
        let anchor = 0x6500_0000_0020usize;
        assert!(insert(anchor as *mut u8));
        fn grow_now() {
            // Insert keys until this thread sees the table grow (other tests share it).
            let cap = current_cap();
            let mut n = 0;
            while current_cap() == cap {
                let k = 0x6700_0000_0000usize + n * 4096 + 32;
                assert!(insert(k as *mut u8));
                n += 1;
            }
            GROWN.with(|g| g.set(n));
        }
        let cap = current_cap();
        let key = key_homed_past(2 * cap);
        assert!(insert(key as *mut u8));
        BETWEEN.with(|b| b.set(Some(grow_now)));
        assert!(contains(key as *const u8), "found after the growth");
        let n = GROWN.with(|g| g.get());
        assert!(
            n > 0 && current_cap() >= 2 * cap,
            "the table grew during the lookup"
        );
        assert!(!contains((key + 16) as *const u8), "a key never inserted");
        for i in 0..n {
            assert!(remove((0x6700_0000_0000usize + i * 4096 + 32) as *mut u8));
        }
        assert!(remove(key as *mut u8) && remove(anchor as *mut u8));
    }

    /// Lookups take no lock: while another thread inserts and removes thousands of keys
    /// (growing the table, shifting clusters), keys that stay are always found and a key
    /// never inserted never is.
    #[test]
    fn lookups_during_changes_see_every_key_that_stays() {
        let base = 0x5000_0000_0000usize;
        let stay: Vec<usize> = (0..64).map(|i| base + i * 4096 + 32).collect();
        for &k in &stay {
            assert!(insert(k as *mut u8));
        }
        let absent = base - 4096 + 32;
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for round in 0..20usize {
                    let keys: Vec<usize> = (0..3000)
                        .map(|i| base + (1 << 30) + (round * 3000 + i) * 4096 + 32)
                        .collect();
                    for &k in &keys {
                        assert!(insert(k as *mut u8));
                    }
                    for &k in &keys {
                        assert!(remove(k as *mut u8));
                    }
                }
                done.store(true, Relaxed);
            });
            let mut lookups = 0u64;
            while !done.load(Relaxed) || lookups < 1000 {
                for &k in &stay {
                    assert!(contains(k as *const u8), "lost {k:#x} during a change");
                }
                assert!(!contains(absent as *const u8));
                lookups += 1;
            }
        });
        for &k in &stay {
            assert!(remove(k as *mut u8));
        }
    }

    #[test]
    fn null_is_never_a_big_block() {
        assert!(insert(0x7100_0000_0020 as *mut u8), "a table exists");
        assert!(!contains(core::ptr::null()));
        assert!(remove(0x7100_0000_0020 as *mut u8));
    }

    #[test]
    fn insert_remove_and_replace_under_collisions() {
        // Keys 16 bytes apart hash to scattered homes; many share clusters at this size.
        let base = 0x7000_0000_0000usize;
        let keys: Vec<usize> = (1..5000).map(|i| base + i * 4096 + 32).collect();
        for &k in &keys {
            assert!(insert(k as *mut u8));
        }
        for &k in &keys {
            assert!(contains(k as *const u8));
        }
        for &k in keys.iter().step_by(2) {
            assert!(remove(k as *mut u8));
            assert!(!remove(k as *mut u8), "second remove of {k:#x} must fail");
        }
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(contains(k as *const u8), i % 2 == 1, "key {k:#x}");
        }
        let moved = 0x6000_0000_0000usize as *mut u8;
        assert_eq!(relocate(keys[1] as *mut u8, || moved), moved);
        assert!(relocate(keys[3] as *mut u8, core::ptr::null_mut).is_null());
        assert!(
            contains(keys[3] as *const u8),
            "a failed move keeps the record"
        );
        assert!(!contains(keys[1] as *const u8) && contains(moved));
        assert!(remove(moved));
        for &k in keys.iter().skip(3).step_by(2) {
            assert!(remove(k as *mut u8));
        }
    }
}

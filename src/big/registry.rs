//! The set of live big-block pointers: how `free` tells a big block of ours from a
//! foreign pointer (or one already freed) without reading memory that may not be mapped.
//! An open-addressing hash set in its own mapping, behind a spin lock; big blocks cost a
//! syscall or a cache lookup anyway, so the lock is not on any hot path.

use crate::lock::SpinLock;
use crate::os;
use core::ptr;

struct Table {
    slots: *mut usize,
    cap: usize,
    len: usize,
}
// SAFETY: the slot array is only touched under the lock.
unsafe impl Send for Table {}

static TABLE: SpinLock<Table> = SpinLock::new(
    crate::lock::rank::REGISTRY,
    Table {
        slots: ptr::null_mut(),
        cap: 0,
        len: 0,
    },
);

const MIN_CAP: usize = 1024;

impl Table {
    fn home(&self, key: usize) -> usize {
        // Fibonacci hashing of the pointer without its always-zero low bits.
        let h = ((key >> 4) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - self.cap.trailing_zeros())) as usize
    }

    fn slot(&self, i: usize) -> *mut usize {
        // SAFETY: callers pass i < cap; the slot array holds cap entries.
        unsafe { self.slots.add(i) }
    }

    fn find(&self, key: usize) -> Option<usize> {
        if self.cap == 0 {
            return None;
        }
        let mask = self.cap - 1;
        let mut i = self.home(key);
        loop {
            // SAFETY: i <= mask < cap.
            let v = unsafe { *self.slot(i) };
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
        let slots = os::map(0, new_cap * 8) as *mut usize;
        if slots.is_null() {
            return false;
        }
        let old = Table {
            slots: self.slots,
            cap: self.cap,
            len: self.len,
        };
        self.slots = slots;
        self.cap = new_cap;
        self.len = 0;
        for i in 0..old.cap {
            // SAFETY: i < old.cap.
            let v = unsafe { *old.slot(i) };
            if v != 0 {
                self.put(v);
            }
        }
        if old.cap != 0 {
            // SAFETY: the old array is ours and no longer referenced.
            unsafe { os::unmap(old.slots as *mut u8, old.cap * 8) };
        }
        true
    }

    /// Inserts a key known to be absent, with room guaranteed.
    fn put(&mut self, key: usize) {
        let mask = self.cap - 1;
        let mut i = self.home(key);
        // SAFETY: indices are masked below cap; the load factor stays <= 1/2, so a free
        // slot exists.
        unsafe {
            while *self.slot(i) != 0 {
                i = (i + 1) & mask;
            }
            *self.slot(i) = key;
        }
        self.len += 1;
    }

    /// Linear-probing deletion by backward shift: no tombstones, probes stay short.
    fn delete_at(&mut self, mut hole: usize) {
        let mask = self.cap - 1;
        let mut j = hole;
        // SAFETY: every index is masked below cap.
        unsafe {
            *self.slot(hole) = 0;
            loop {
                j = (j + 1) & mask;
                let v = *self.slot(j);
                if v == 0 {
                    break;
                }
                let k = self.home(v);
                // Move `v` into the hole unless its home lies cyclically in (hole, j].
                let stays = if hole <= j {
                    hole < k && k <= j
                } else {
                    hole < k || k <= j
                };
                if !stays {
                    *self.slot(hole) = v;
                    *self.slot(j) = 0;
                    hole = j;
                }
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
    t.put(p as usize);
    true
}

/// Forgets a big block; false when it was not recorded.
pub fn remove(p: *mut u8) -> bool {
    let mut t = TABLE.lock();
    match t.find(p as usize) {
        Some(i) => {
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
            t.delete_at(i);
            t.put(new as usize); // the deletion made room
        }
    }
    new
}

pub fn contains(p: *const u8) -> bool {
    TABLE.lock().find(p as usize).is_some()
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

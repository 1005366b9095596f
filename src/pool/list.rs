//! The one intrusive doubly linked list of the pool: a size class's queue of pages and the
//! heap's full list (`Page`), a heap's segments with free page slots, and its cache of
//! empty segments (`Segment`). Owner-only: every list belongs to one heap, used by its
//! thread alone. Nodes carry their own links (`Node`); the list holds first, last, length.

use core::ptr;

/// A record that can sit on one `List` at a time through its own `next`/`prev` links.
///
/// # Safety
/// The four accessors must read and write the node's own links and nothing else.
pub unsafe trait Node: Sized {
    /// # Safety
    /// `n` must be a live node.
    unsafe fn next(n: *mut Self) -> *mut Self;
    /// # Safety
    /// As `next`.
    unsafe fn prev(n: *mut Self) -> *mut Self;
    /// # Safety
    /// `n` must be a live node whose owner may change its links.
    unsafe fn set_next(n: *mut Self, v: *mut Self);
    /// # Safety
    /// As `set_next`.
    unsafe fn set_prev(n: *mut Self, v: *mut Self);
}

#[repr(C)]
pub struct List<T> {
    pub first: *mut T,
    pub last: *mut T,
    pub len: usize,
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for List<T> {}

impl<T: Node> List<T> {
    pub const EMPTY: List<T> = List {
        first: ptr::null_mut(),
        last: ptr::null_mut(),
        len: 0,
    };

    /// # Safety
    /// `n` must be a live node on no list; the caller owns this list and its nodes.
    pub unsafe fn push_front(&mut self, n: *mut T) {
        // SAFETY: `n` and the first node are live nodes of the caller's.
        unsafe {
            T::set_prev(n, ptr::null_mut());
            T::set_next(n, self.first);
            if self.first.is_null() {
                self.last = n;
            } else {
                T::set_prev(self.first, n);
            }
        }
        self.first = n;
        self.len += 1;
    }

    /// # Safety
    /// `n` must be on this list.
    pub unsafe fn remove(&mut self, n: *mut T) {
        // SAFETY: `n` and its neighbours are live nodes on this list.
        unsafe {
            let (prev, next) = (T::prev(n), T::next(n));
            if prev.is_null() {
                self.first = next;
            } else {
                T::set_next(prev, next);
            }
            if next.is_null() {
                self.last = prev;
            } else {
                T::set_prev(next, prev);
            }
            T::set_next(n, ptr::null_mut());
            T::set_prev(n, ptr::null_mut());
        }
        self.len -= 1;
    }

    /// Takes the first node off the list (null when empty).
    ///
    /// # Safety
    /// As `remove`: the caller owns the list.
    pub unsafe fn pop_front(&mut self) -> *mut T {
        let n = self.first;
        if !n.is_null() {
            // SAFETY: the first node is on this list.
            unsafe { self.remove(n) };
        }
        n
    }

    /// Whether `n` is on this list (a walk: for checks and tests).
    pub fn contains(&self, n: *mut T) -> bool {
        let mut q = self.first;
        while !q.is_null() {
            if q == n {
                return true;
            }
            // SAFETY: nodes on the list are live.
            q = unsafe { T::next(q) };
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct N {
        next: *mut N,
        prev: *mut N,
    }

    unsafe impl Node for N {
        unsafe fn next(n: *mut N) -> *mut N {
            unsafe { (*n).next }
        }
        unsafe fn prev(n: *mut N) -> *mut N {
            unsafe { (*n).prev }
        }
        unsafe fn set_next(n: *mut N, v: *mut N) {
            unsafe { (*n).next = v }
        }
        unsafe fn set_prev(n: *mut N, v: *mut N) {
            unsafe { (*n).prev = v }
        }
    }

    #[test]
    fn push_remove_pop_in_any_order() {
        let mut nodes: Vec<N> = (0..4)
            .map(|_| N {
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
            })
            .collect();
        let base = nodes.as_mut_ptr();
        let n = |i: usize| unsafe { base.add(i) };
        let mut l = List::<N>::EMPTY;
        unsafe {
            for i in 0..4 {
                l.push_front(n(i));
            }
            assert_eq!((l.first, l.last, l.len), (n(3), n(0), 4));
            l.remove(n(2)); // middle
            l.remove(n(3)); // first
            l.remove(n(0)); // last
            assert!(l.contains(n(1)) && !l.contains(n(2)));
            assert_eq!((l.first, l.last, l.len), (n(1), n(1), 1));
            assert_eq!(l.pop_front(), n(1));
            assert!(l.first.is_null() && l.last.is_null() && l.len == 0);
            assert!(l.pop_front().is_null());
        }
    }
}

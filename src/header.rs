//! Layer 2: the 32-byte AllocHeader that the hakmem model puts in front of a block. The
//! pool path has none; big blocks and the reuse front end carry one.

/// "HAKM" in ASCII, little-endian: a live header.
pub const MAGIC: u32 = 0x4d4b_4148;
pub const HEADER_SIZE: usize = 32;

/// Where the block's memory came from: how `free` must give it back.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Carved from a pool block (the reuse front end's small blocks).
    Pool = 1,
    /// A big block below the learned threshold: its own mapping, released on free.
    Heap = 2,
    /// A big block at or above the threshold: its own mapping, kept in the BigCache on free.
    Map = 3,
    /// Carved from a pool block with the user pointer `offset` (the alignment) bytes in:
    /// the reuse front's small over-aligned blocks (freed off its fast path).
    PoolAligned = 4,
}

#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Live = 1,
    Freed = 2,
    /// Free, held by the BigCache for reuse.
    Cached = 3,
}

/// 32 bytes in front of the user pointer.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug)]
pub struct AllocHeader {
    pub magic: u32,
    pub method: Method,
    pub state: State,
    /// The sites mode's sampled stack that allocated the block (its index + 1 in
    /// `learn::stacks`; 0: not sampled, and always 0 outside the sites mode).
    pub stack: u16,
    /// Call-site id (0: unknown).
    pub site: u32,
    /// Bytes from the start of the mapping (or pool block) to the user pointer.
    pub offset: u32,
    /// Bytes the caller asked for.
    pub size: u64,
    /// Bytes mapped (or the pool block's size).
    pub span: u64,
}

const _: () = assert!(core::mem::size_of::<AllocHeader>() == HEADER_SIZE);

impl AllocHeader {
    /// `offset` is at most one page (big blocks of any alignment: see `big::map_block`).
    pub fn new(method: Method, site: u32, offset: usize, size: usize, span: usize) -> Self {
        debug_assert!(offset <= u32::MAX as usize);
        AllocHeader {
            magic: MAGIC,
            method,
            state: State::Live,
            stack: 0,
            site,
            offset: offset as u32,
            size: size as u64,
            span: span as u64,
        }
    }

    /// The header of the block whose user pointer is `user`.
    ///
    /// # Safety
    /// `user - 32 .. user` must be readable memory of this allocator.
    #[inline(always)]
    pub unsafe fn of(user: *mut u8) -> *mut AllocHeader {
        // SAFETY: the caller guarantees the 32 bytes before `user` are ours.
        let h = unsafe { user.sub(HEADER_SIZE) };
        // Headers are no-access to memcheck (`valgrind` feature) except while we use them.
        crate::track::defined(h, HEADER_SIZE);
        h as *mut AllocHeader
    }

    /// Writes a live header in front of `user`.
    ///
    /// # Safety
    /// `user - 32 .. user` must be writable memory of this allocator, 16-byte aligned.
    #[inline(always)]
    pub unsafe fn write(user: *mut u8, h: AllocHeader) {
        // SAFETY: per the caller's guarantee.
        unsafe { AllocHeader::of(user).write(h) }
    }

    /// Whether the header in front of `user` is a live one of ours (magic and state).
    ///
    /// # Safety
    /// As for `of`.
    #[inline(always)]
    pub unsafe fn verify(user: *mut u8) -> bool {
        // SAFETY: per the caller's guarantee.
        let h = unsafe { &*AllocHeader::of(user) };
        h.magic == MAGIC && h.state == State::Live
    }

    /// The mapping (or pool block) start.
    pub fn base(&self, user: *mut u8) -> *mut u8 {
        user.wrapping_sub(self.offset as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_verifies() {
        let mut buf = [0u128; 4]; // 64 bytes, 16-aligned
        let base = buf.as_mut_ptr() as *mut u8; // one pointer for the whole test (Miri)
        let user = unsafe { base.add(32) };
        unsafe {
            assert!(!AllocHeader::verify(user));
            AllocHeader::write(user, AllocHeader::new(Method::Map, 7, 32, 100, 4096));
            assert!(AllocHeader::verify(user));
            let h = *AllocHeader::of(user);
            assert_eq!(
                (h.site, h.size, h.span, h.method),
                (7, 100, 4096, Method::Map)
            );
            assert_eq!(h.base(user), base);
            (*AllocHeader::of(user)).state = State::Freed;
            assert!(!AllocHeader::verify(user));
        }
    }
}

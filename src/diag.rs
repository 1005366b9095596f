//! Diagnostics that never allocate: formatted into a stack buffer, written with `write(2)`.

use core::fmt::{self, Write};

/// A fixed-size text buffer; what does not fit is dropped.
pub struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    pub const fn new() -> Self {
        StackBuf {
            buf: [0; N],
            len: 0,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn truncated(&self) -> bool {
        self.len == N
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// A text buffer in its own mapping (for reports too big for the stack); what does not
/// fit is dropped. Unmapped on drop.
pub struct MapBuf {
    ptr: *mut u8,
    cap: usize,
    len: usize,
}

impl MapBuf {
    pub fn new(cap: usize) -> MapBuf {
        let ptr = crate::os::map(0, cap);
        MapBuf {
            ptr,
            cap: if ptr.is_null() { 0 } else { cap },
            len: 0,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the first `len` bytes of the mapping were written by `write_str`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Write for MapBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.cap - self.len);
        // SAFETY: `len + n <= cap` bytes of the mapping are ours.
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.add(self.len), n) };
        self.len += n;
        Ok(())
    }
}

impl Drop for MapBuf {
    fn drop(&mut self) {
        if self.cap != 0 {
            // SAFETY: our own mapping, no longer referenced.
            unsafe { crate::os::unmap(self.ptr, self.cap) };
        }
    }
}

/// Writes all of `bytes` to file descriptor `fd`, retrying short writes.
pub fn write_fd(fd: i32, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr() as *const libc::c_void, bytes.len()) };
        if n < 0 {
            // SAFETY: errno is thread-local and always readable.
            if unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// Prints one line to stderr.
pub fn eprint_line(args: fmt::Arguments<'_>) {
    let mut b = StackBuf::<512>::new();
    let _ = b.write_fmt(args);
    let _ = b.write_str("\n");
    write_fd(2, b.as_bytes());
}

/// Reports a pointer this allocator cannot free, then aborts (as glibc's
/// `free(): invalid pointer` does): going on would corrupt the heap.
#[cold]
#[inline(never)]
pub fn fatal_pointer(op: &str, ptr: *const u8, why: &str) -> ! {
    eprint_line(format_args!(
        "hakmem: {op}(): invalid pointer {ptr:p}: {why}"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_buf_formats_and_truncates() {
        let mut b = StackBuf::<8>::new();
        write!(b, "{:p}", 0x1234usize as *const u8).unwrap();
        assert_eq!(b.as_bytes(), b"0x1234");
        write!(b, "abcdef").unwrap();
        assert_eq!(b.as_bytes(), b"0x1234ab");
        assert!(b.truncated());
    }
}

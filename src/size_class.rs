//! Size classes of the pool: 16-byte steps up to 128 B, then 8 classes per power of two
//! (12.5 % spacing) up to `POOL_MAX` (256 KiB, below the BigCache's 512 KiB minimum). Every class is a multiple of 16, so every block is
//! 16-byte aligned. Pure logic: runs under Miri.

/// Every block of the allocator, pool or big, is aligned to at least this.
pub const MIN_ALIGN: usize = 16;

/// Largest request the pool serves; bigger ones are big blocks.
pub const POOL_MAX: usize = 256 * 1024;
/// Number of size classes (bins).
pub const NBINS: usize = 96;
/// Largest block that lives in a small (64 KiB) page.
pub const SMALL_MAX: usize = 8 * 1024;
/// Largest block that lives in a medium (512 KiB) page; bigger ones use 1 MiB pages.
pub const MEDIUM_MAX: usize = 64 * 1024;

/// The big-block classes (the BigCache's, and the learner's size histogram): 512 KiB …
/// 64 MiB, about 1.5× apart (the original's v2 stopped at 16 MiB). Here, below both
/// `learn` and `big`, so that each sees them without seeing the other.
pub const BIG_CLASSES: [usize; 13] = [
    512 << 10,
    1 << 20,
    2 << 20,
    3 << 20,
    4 << 20,
    6 << 20,
    8 << 20,
    12 << 20,
    16 << 20,
    24 << 20,
    32 << 20,
    48 << 20,
    64 << 20,
];

/// The big class a request of `size` bytes is looked up in: the smallest that holds it.
#[inline]
pub fn big_class_for_request(size: usize) -> Option<usize> {
    if size > BIG_CLASSES[BIG_CLASSES.len() - 1] {
        return None;
    }
    Some(BIG_CLASSES.iter().position(|&c| c >= size).unwrap_or(0))
}

/// The big class a block with `capacity` usable bytes is filed under: the largest it fills,
/// so it serves every request looked up in that class. None below 512 KiB.
#[inline]
pub fn big_class_for_block(capacity: usize) -> Option<usize> {
    BIG_CLASSES.iter().rposition(|&c| c <= capacity)
}

/// The largest size `SMALL_BINS` serves.
pub const TABLE_MAX: usize = 4096;
/// Bins for sizes up to 4 KiB, indexed by `(size + 15) / 16`: one load on the fast path
/// (exact: every bin boundary up to 4 KiB is a multiple of 16).
static SMALL_BINS: [u8; TABLE_MAX / 16 + 1] = {
    let mut t = [0u8; TABLE_MAX / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        let size = if i == 0 { 1 } else { i * 16 };
        t[i] = bin_of_computed(size) as u8;
        i += 1;
    }
    t
};

/// The bin that serves `size` bytes (`size <= POOL_MAX`; 0 is served as 1).
#[inline(always)]
pub fn bin_of(size: usize) -> usize {
    debug_assert!(size <= POOL_MAX);
    if size <= TABLE_MAX {
        SMALL_BINS[(size + 15) >> 4] as usize
    } else {
        bin_of_computed(size)
    }
}

/// The closed form behind `bin_of`.
pub const fn bin_of_computed(size: usize) -> usize {
    if size <= 128 {
        let s = if size == 0 { 1 } else { size };
        return s.div_ceil(16) - 1;
    }
    let w = size - 1;
    let k = (usize::BITS - 1 - w.leading_zeros()) as usize; // floor(log2(w)) >= 7
    8 + (k - 7) * 8 + ((w >> (k - 3)) & 7)
}

/// Block size of `bin`.
pub const fn bin_size(bin: usize) -> usize {
    if bin < 8 {
        return 16 * (bin + 1);
    }
    let j = bin - 8;
    let k = 7 + j / 8;
    (1 << k) + (((j % 8) + 1) << (k - 3))
}

/// The smallest bin whose blocks hold `size` bytes and whose block size is a multiple of
/// `align` (a power of two): since pages start at 64 KiB boundaries, every block of such a
/// bin is then `align`-aligned. None when no pool bin qualifies.
pub fn bin_for_aligned(size: usize, align: usize) -> Option<usize> {
    let need = if size > align { size } else { align };
    if need > POOL_MAX {
        return None;
    }
    let mut bin = bin_of(need);
    while bin < NBINS {
        if bin_size(bin).is_multiple_of(align) {
            return Some(bin);
        }
        bin += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_increasing_multiples_of_16_up_to_pool_max() {
        assert_eq!(bin_size(0), 16);
        assert_eq!(bin_size(NBINS - 1), POOL_MAX);
        for b in 1..NBINS {
            assert!(bin_size(b) > bin_size(b - 1), "bin {b}");
            assert_eq!(bin_size(b) % 16, 0);
        }
    }

    #[test]
    fn spacing_is_at_most_one_eighth_above_128_bytes() {
        for b in 9..NBINS {
            let (lo, hi) = (bin_size(b - 1), bin_size(b));
            assert!((hi - lo) * 8 <= lo, "{lo} -> {hi}");
        }
    }

    #[test]
    fn every_size_maps_to_the_smallest_bin_that_fits() {
        // Exhaustive over the whole pool range (65 536 sizes; quick, and Miri-friendly).
        let step = if cfg!(miri) { 61 } else { 1 };
        for size in (0..=POOL_MAX).step_by(step) {
            let b = bin_of(size);
            assert!(bin_size(b) >= size.max(1), "size {size} bin {b}");
            if b > 0 {
                assert!(bin_size(b - 1) < size, "size {size} fits a smaller bin");
            }
            assert_eq!(b, bin_of_computed(size));
        }
    }

    #[test]
    fn aligned_bins_are_multiples_of_the_alignment() {
        assert_eq!(bin_for_aligned(48, 64), Some(bin_of(64)));
        assert_eq!(bin_size(bin_for_aligned(129, 64).unwrap()), 192);
        assert_eq!(bin_size(bin_for_aligned(100, 4096).unwrap()), 4096);
        assert_eq!(
            bin_size(bin_for_aligned(10, 128 * 1024).unwrap()),
            128 * 1024
        );
        assert_eq!(bin_for_aligned(10, 512 * 1024), None);
        assert_eq!(bin_for_aligned(POOL_MAX + 1, 16), None);
        for align in [16, 32, 64, 128, 256, 4096, 65536, 262144] {
            for size in [1, 17, 100, 1000, 5000, 40000, 200000] {
                if let Some(b) = bin_for_aligned(size, align) {
                    assert_eq!(bin_size(b) % align, 0);
                    assert!(bin_size(b) >= size);
                }
            }
        }
    }
}

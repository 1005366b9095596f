//! Call sites: the allocation's purpose label. A `Site` is a 32-bit id taken from the
//! caller's source location (Rust, via `#[track_caller]`) or return address (C ABI).

use core::panic::Location;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site(pub u32);

impl Site {
    /// No site known.
    pub const UNKNOWN: Site = Site(0);

    /// The site of the caller's caller chain up to the first non-`#[track_caller]` frame.
    #[track_caller]
    #[inline]
    pub fn here() -> Site {
        Site::from_location(Location::caller())
    }

    /// A site id from a source location: the file name's address (one per file in the
    /// binary), line and column, mixed. Never 0.
    #[inline]
    pub fn from_location(l: &'static Location<'static>) -> Site {
        let file = l.file().as_ptr() as u64;
        let x = file ^ ((l.line() as u64) << 32) ^ (l.column() as u64);
        Site::from_u64(x)
    }

    /// The site of the C ABI's caller return address `caller` (0: not known).
    #[inline]
    pub fn of_caller(caller: usize) -> Site {
        if caller == 0 {
            Site::UNKNOWN
        } else {
            Site::from_return_address(caller)
        }
    }

    /// A site id from a code address (the C ABI's caller return address). Never 0.
    #[inline]
    pub fn from_return_address(addr: usize) -> Site {
        Site::from_u64(addr as u64)
    }

    #[inline]
    fn from_u64(x: u64) -> Site {
        let h = (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let id = (h >> 32) as u32;
        Site(if id == 0 { 1 } else { id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_in_helper() -> Site {
        Site::here()
    }

    #[test]
    fn distinct_locations_give_distinct_sites_and_the_same_location_the_same() {
        let a = Site::here();
        let b = Site::here();
        assert_ne!(a, b);
        assert_ne!(a, Site::UNKNOWN);
        assert_eq!(site_in_helper(), site_in_helper());
        assert_ne!(
            Site::from_return_address(0x401000),
            Site::from_return_address(0x401010)
        );
    }
}

//! The error type of every `mm` operation.

use core::fmt;

use crate::pagetable::{ENTRIES, Level, PAGE_SIZE, USER_END, index};

/// Why an `mm` operation refused its input. Operations never panic on bad
/// input; they return one of these and change nothing.
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// assert_eq!(mm.mmap(0x10_0000, 0, Prot::Read, Backing::Anon), Err(MmError::ZeroLength));
/// assert_eq!(mm.fault(0x10_0000, false), Err(MmError::NotMapped { addr: 0x10_0000 }));
/// let e = mm.mmap(0x10_0001, PAGE_SIZE, Prot::Read, Backing::Anon).unwrap_err();
/// assert_eq!(e, MmError::Unaligned { addr: 0x10_0001 });
/// println!("{e}"); // a readable message; also a std::error::Error
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MmError {
    /// A range of length zero.
    ZeroLength,
    /// An address or length that is not a multiple of the required size
    /// (4 KiB for ranges, 2 MiB for a collapse).
    Unaligned {
        /// The offending address or length.
        addr: u64,
    },
    /// An address whose bits 47..63 are not all equal (not canonical on a
    /// 48-bit x86-64 machine).
    NonCanonical {
        /// The offending address.
        addr: u64,
    },
    /// A canonical address outside the user half `[0, 2^47)`, or a range
    /// that runs past its end.
    OutOfRange {
        /// The offending address.
        addr: u64,
    },
    /// `mmap` over a range that already holds a mapping.
    Overlap {
        /// The first address of the existing mapping.
        addr: u64,
    },
    /// An address that no VMA covers.
    NotMapped {
        /// The offending address.
        addr: u64,
    },
    /// A write to (or a writable GUP of) a read-only mapping.
    ReadOnly {
        /// The offending address.
        addr: u64,
    },
    /// A collapse of a file-backed range (only anonymous memory collapses).
    NotAnonymous {
        /// The offending address.
        addr: u64,
    },
    /// A collapse of a range whose PTE table is missing or not full, or
    /// whose 2 MiB span is not covered by a single VMA.
    NotPopulated {
        /// The start of the 2 MiB span.
        addr: u64,
    },
    /// A GUP or semi-locked walk over more than [`MAX_WALK_PAGES`] pages
    /// (its result would be a vector of that many frames).
    ///
    /// [`MAX_WALK_PAGES`]: crate::MAX_WALK_PAGES
    TooLarge {
        /// The requested length in bytes.
        len: u64,
    },
    /// A collapse that found the table in use and gave up (Refcount only).
    Busy {
        /// The start of the 2 MiB span.
        addr: u64,
    },
    /// An `mremap` of a range that more than one VMA covers (the kernel
    /// moves part of one VMA at a time).
    MultipleVmas {
        /// Where the second VMA begins.
        addr: u64,
    },
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MmError::ZeroLength => write!(f, "zero-length range"),
            MmError::Unaligned { addr } => write!(f, "{addr:#x} is not aligned"),
            MmError::NonCanonical { addr } => write!(f, "{addr:#x} is not a canonical 48-bit address"),
            MmError::OutOfRange { addr } => write!(f, "{addr:#x} is outside the user address space"),
            MmError::Overlap { addr } => write!(f, "the range overlaps the mapping at {addr:#x}"),
            MmError::NotMapped { addr } => write!(f, "no mapping covers {addr:#x}"),
            MmError::ReadOnly { addr } => write!(f, "the mapping at {addr:#x} is read-only"),
            MmError::NotAnonymous { addr } => write!(f, "the mapping at {addr:#x} is file-backed"),
            MmError::NotPopulated { addr } => {
                write!(f, "the 2 MiB span at {addr:#x} is not one fully populated PTE table of one VMA")
            }
            MmError::TooLarge { len } => write!(f, "a walk of {len:#x} bytes is too large"),
            MmError::Busy { addr } => write!(f, "the PTE table at {addr:#x} is in use"),
            MmError::MultipleVmas { addr } => write!(f, "the range continues into another mapping at {addr:#x}"),
        }
    }
}

impl std::error::Error for MmError {}

/// The result type of `mm` operations.
///
/// ```
/// use phase_lock_mm::*;
/// fn map_one(mm: &Mm, addr: u64) -> MmResult<u64> {
///     mm.mmap(addr, PAGE_SIZE, Prot::ReadWrite, Backing::Anon)?;
///     mm.fault(addr, true)
/// }
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// assert!(map_one(&mm, 0x10_0000).is_ok());
/// assert!(map_one(&mm, 0x10_0000).is_err()); // already mapped
/// ```
pub type MmResult<T> = Result<T, MmError>;

/// Validates `[start, start + len)`; returns the end.
pub(crate) fn check_range(start: u64, len: u64) -> MmResult<u64> {
    if len == 0 {
        return Err(MmError::ZeroLength);
    }
    check_addr(start)?;
    if !start.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Unaligned { addr: start });
    }
    if !len.is_multiple_of(PAGE_SIZE) {
        return Err(MmError::Unaligned { addr: len });
    }
    let end = match start.checked_add(len) {
        Some(end) if end <= USER_END => end,
        _ => return Err(MmError::OutOfRange { addr: start.saturating_add(len) }),
    };
    #[cfg(phase_lock_loom)]
    {
        // The loom geometry (see `ENTRIES`): small ranges of valid addresses.
        if len > 64 * PAGE_SIZE {
            return Err(MmError::OutOfRange { addr: end });
        }
        let mut a = start;
        while a < end {
            check_addr(a)?;
            a += PAGE_SIZE;
        }
    }
    Ok(end)
}

/// The most pages one GUP or semi-locked walk returns (4 GiB worth).
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// let too_long = (MAX_WALK_PAGES + 1) * PAGE_SIZE;
/// assert!(matches!(mm.gup(0, too_long, false), Err(MmError::TooLarge { .. })));
/// ```
pub const MAX_WALK_PAGES: u64 = 1 << 20;

/// Validates the range of a walk that returns one item per page.
pub(crate) fn check_walk(start: u64, len: u64) -> MmResult<u64> {
    let end = check_range(start, len)?;
    if len / PAGE_SIZE > MAX_WALK_PAGES {
        return Err(MmError::TooLarge { len });
    }
    Ok(end)
}

/// Validates one address: canonical and in the user half.
pub(crate) fn check_addr(addr: u64) -> MmResult<()> {
    let top = addr >> 47;
    if top != 0 && top != (1 << 17) - 1 {
        return Err(MmError::NonCanonical { addr });
    }
    if addr >= USER_END {
        return Err(MmError::OutOfRange { addr });
    }
    if cfg!(phase_lock_loom)
        && [Level::Pte, Level::Pmd, Level::Pud, Level::Pgd].iter().any(|&l| index(addr, l) >= ENTRIES)
    {
        return Err(MmError::OutOfRange { addr });
    }
    Ok(())
}

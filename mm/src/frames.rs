//! The simulated frame allocator.
//!
//! Frames are numbers, not memory. 4 KiB frames come from `[1, 2^38)`, handed
//! to threads in batches so that a fault storm does not bounce one counter
//! between CPUs (the kernel's per-CPU page lists play that role); 2 MiB
//! frames (512 aligned frame numbers) come from `[2^38, 2^40)`. Frame numbers
//! are never reused, so a frame mapped twice is a bug that shows.
//! Allocation and free counts are striped per thread and summed on demand.

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// The first 2 MiB frame number.
const HUGE_BASE: u64 = 1 << 38;
/// 4 KiB frames handed to a thread at once.
#[cfg(not(phase_lock_loom))]
const BATCH: u64 = 64;
/// Number of counter stripes.
const STRIPES: usize = 8;

/// Hands out simulated frame numbers and counts them.
///
/// Shared (through an `Arc`) by every [`Mm`](crate::Mm) and
/// [`File`](crate::File) of one simulated machine.
///
/// ```
/// use phase_lock_mm::*;
/// let frames = FrameAllocator::new();
/// let mm = Mm::new(Strategy::Split, &frames);
/// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
/// mm.fault(0x10_0000, true).unwrap();
/// assert_eq!(frames.in_use(), 1);
/// ```
pub struct FrameAllocator {
    #[cfg(not(phase_lock_loom))]
    id: u64,
    next: AtomicU64,
    next_huge: AtomicU64,
    allocated: [CachePadded<AtomicU64>; STRIPES],
    freed: [CachePadded<AtomicU64>; STRIPES],
    /// Whether each 4 KiB allocation clears 4 KiB of real memory.
    #[cfg_attr(phase_lock_loom, allow(dead_code))]
    zero_pages: bool,
}

#[cfg(not(phase_lock_loom))]
static NEXT_ALLOCATOR_ID: AtomicU64 = AtomicU64::new(1);

/// Pages in a thread's ring of memory that [`FrameAllocator::zeroing`]
/// clears, one per allocation: 4 MiB, more than a core's L2 cache, so that
/// a cleared page is seldom still in it (a fresh page in the kernel is not).
#[cfg(not(phase_lock_loom))]
const ZERO_RING_PAGES: usize = 1024;

#[cfg(not(phase_lock_loom))]
thread_local! {
    /// This thread's ring of pages to clear, and the next one.
    static ZERO_RING: core::cell::RefCell<(Vec<u8>, usize)> = const { core::cell::RefCell::new((Vec::new(), 0)) };
    /// This thread's batch: (allocator id, next frame, end of batch).
    static BATCH_CACHE: core::cell::Cell<(u64, u64, u64)> = const { core::cell::Cell::new((0, 0, 0)) };
    /// This thread's counter stripe.
    static STRIPE: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // Relaxed: only spreads threads over stripes.
        (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % STRIPES
    };
}

fn stripe() -> usize {
    #[cfg(not(phase_lock_loom))]
    return STRIPE.with(|s| *s);
    #[cfg(phase_lock_loom)]
    0
}

impl FrameAllocator {
    /// A new allocator with no frame handed out.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames: std::sync::Arc<FrameAllocator> = FrameAllocator::new();
    /// assert_eq!(frames.in_use(), 0);
    /// ```
    pub fn new() -> Arc<FrameAllocator> {
        FrameAllocator::build(false)
    }

    /// An allocator whose every 4 KiB allocation also clears 4 KiB of real
    /// memory (the kernel's `clear_page` of a fresh anonymous page), so that
    /// a fault costs more than its locks and walk: the `page_table`
    /// example's realistic mode. (Under loom, as [`new`](FrameAllocator::new).)
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::zeroing();
    /// let mm = Mm::new(Strategy::PerVma, &frames);
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.fault(0x10_0000, true).unwrap(); // clears a page on the way
    /// assert_eq!(frames.in_use(), 1);
    /// ```
    pub fn zeroing() -> Arc<FrameAllocator> {
        FrameAllocator::build(true)
    }

    fn build(zero_pages: bool) -> Arc<FrameAllocator> {
        Arc::new(FrameAllocator {
            zero_pages,
            // Relaxed: a unique id, no data published with it.
            #[cfg(not(phase_lock_loom))]
            id: NEXT_ALLOCATOR_ID.fetch_add(1, Ordering::Relaxed),
            next: AtomicU64::new(1),
            next_huge: AtomicU64::new(HUGE_BASE),
            allocated: core::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            freed: core::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
        })
    }

    /// One 4 KiB frame.
    pub(crate) fn alloc(&self) -> u64 {
        // Relaxed everywhere below: frame numbers carry no data, and the
        // counters are statistics read at quiescent points (after joins).
        #[cfg(not(phase_lock_loom))]
        let pfn = BATCH_CACHE.with(|c| {
            let (id, next, end) = c.get();
            if id == self.id && next < end {
                c.set((id, next + 1, end));
                return next;
            }
            let start = self.next.fetch_add(BATCH, Ordering::Relaxed);
            c.set((self.id, start + 1, start + BATCH));
            start
        });
        #[cfg(phase_lock_loom)]
        let pfn = self.next.fetch_add(1, Ordering::Relaxed);
        self.allocated[stripe()].fetch_add(1, Ordering::Relaxed);
        #[cfg(not(phase_lock_loom))]
        if self.zero_pages {
            clear_a_page();
        }
        pfn
    }

    /// One 2 MiB frame: the first of 512 consecutive, 512-aligned frame
    /// numbers.
    pub(crate) fn alloc_huge(&self) -> u64 {
        let pfn = self.next_huge.fetch_add(512, Ordering::Relaxed);
        self.allocated[stripe()].fetch_add(512, Ordering::Relaxed);
        pfn
    }

    /// Returns `n` frames.
    pub(crate) fn free(&self, n: u64) {
        self.freed[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    /// 4 KiB frames handed out and not returned (a 2 MiB frame counts 512).
    /// Exact only when no operation runs.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let mm = Mm::new(Strategy::Split, &frames);
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// mm.gup(0x10_0000, 2 * PAGE_SIZE, true).unwrap();
    /// assert_eq!(frames.in_use(), 2);
    /// mm.munmap(0x10_0000, 2 * PAGE_SIZE).unwrap();
    /// assert_eq!(frames.in_use(), 0);
    /// ```
    pub fn in_use(&self) -> u64 {
        let sum = |s: &[CachePadded<AtomicU64>; STRIPES]| s.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
        sum(&self.allocated).wrapping_sub(sum(&self.freed))
    }

    /// Whether `pfn` lies in the 2 MiB-frame region.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
    /// mm.mmap(0, PMD_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
    /// let small = mm.fault(0, true).unwrap();
    /// assert!(!FrameAllocator::is_huge_frame(small));
    /// ```
    pub fn is_huge_frame(pfn: u64) -> bool {
        pfn >= HUGE_BASE
    }
}

/// Clears the next page of this thread's ring.
#[cfg(not(phase_lock_loom))]
fn clear_a_page() {
    const PAGE: usize = crate::PAGE_SIZE as usize;
    ZERO_RING.with(|r| {
        let (ring, next) = &mut *r.borrow_mut();
        if ring.is_empty() {
            *ring = vec![1; ZERO_RING_PAGES * PAGE];
        }
        let page = &mut ring[*next * PAGE..][..PAGE];
        page.fill(0);
        // The cleared page escapes, so the stores are made.
        core::hint::black_box(page);
        *next = (*next + 1) % ZERO_RING_PAGES;
    });
}

impl core::fmt::Debug for FrameAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameAllocator").field("in_use", &self.in_use()).finish()
    }
}

//! Files: a page cache and an rmap (`i_mmap`) of the address spaces that map
//! them.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use crate::frames::FrameAllocator;
use crate::lockorder::{Class, Held};
use crate::sync::new_lock;
use crate::{MmError, MmResult, PAGE_SIZE};
use phase_lock::PhaseLock;

/// What the rmap needs of an address space that maps a file. `Mm`'s shared
/// state implements it (walk.rs), so that this file depends on no address
/// space code.
pub(crate) trait MapsFile: Send + Sync {
    /// Clears the entries in `[start, end)` under the page-table locks of
    /// the address space's strategy (R5); returns how many were present.
    fn rmap_zap(&self, start: u64, end: u64) -> u64;
    /// Gives deferred page tables back where a grace period can be observed
    /// cheaply now (R4).
    fn maybe_reclaim(&self);
}

/// One mapping of a file, as the rmap records it.
pub(crate) struct RmapEntry {
    /// The address space (weak: an Mm does not outlive its last handle
    /// because a file maps it).
    pub(crate) mm: Weak<dyn MapsFile>,
    /// The address space's id.
    pub(crate) mm_id: u64,
    /// The VMA's range.
    pub(crate) start: u64,
    /// The VMA's end.
    pub(crate) end: u64,
    /// The file page at `start`.
    pub(crate) pgoff: u64,
}

/// A file: pages in a page cache, and the list of mappings of it.
///
/// A [`punch_hole`](File::punch_hole) reaches every address space mapping
/// the range through the rmap, taking the `i_mmap` lock and page-table locks
/// but never a VMA lock (the lock order puts the VMA lock first).
///
/// ```
/// use phase_lock_mm::*;
/// let frames = FrameAllocator::new();
/// let file = File::new(&frames);
/// let (a, b) = (Mm::new(Strategy::Split, &frames), Mm::new(Strategy::Classic, &frames));
/// let backing = Backing::File { file: file.clone(), pgoff: 0 };
/// a.mmap(0x10_0000, PAGE_SIZE, Prot::Read, backing.clone()).unwrap();
/// b.mmap(0x30_0000, PAGE_SIZE, Prot::Read, backing).unwrap();
/// // Both address spaces map the same page-cache frame.
/// assert_eq!(a.fault(0x10_0000, false), b.fault(0x30_0000, false));
/// assert_eq!(file.punch_hole(0, PAGE_SIZE), Ok(2)); // reaches both through the rmap
/// assert_eq!(a.stats().mapped_pages + b.stats().mapped_pages, 0);
/// ```
pub struct File {
    pub(crate) frames: Arc<FrameAllocator>,
    /// Page cache: file page → frame. A leaf lock, taken under PTE PTLs.
    cache: PhaseLock<BTreeMap<u64, u64>>,
    /// The rmap.
    pub(crate) i_mmap: PhaseLock<Vec<RmapEntry>>,
}

impl File {
    /// A new empty file whose pages come from `frames`.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let file = File::new(&FrameAllocator::new());
    /// assert_eq!((file.cached_pages(), file.mappings()), (0, 0));
    /// ```
    pub fn new(frames: &Arc<FrameAllocator>) -> Arc<File> {
        Arc::new(File { frames: frames.clone(), cache: new_lock(BTreeMap::new()), i_mmap: new_lock(Vec::new()) })
    }

    /// A number that identifies this file while it lives (its address).
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (a, b) = (File::new(&frames), File::new(&frames));
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> u64 {
        self as *const File as u64
    }

    /// The frame caching file page `pgoff`, allocated on first use. Called
    /// under the PTE PTL of the entry about to map it.
    pub(crate) fn page(&self, pgoff: u64) -> u64 {
        let _h = Held::take(Class::PageCache);
        let mut cache = self.cache.write();
        *cache.entry(pgoff).or_insert_with(|| self.frames.alloc())
    }

    /// The frame caching file page `pgoff`, if any.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (mm, file) = (Mm::new(Strategy::Split, &frames), File::new(&frames));
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::Read, Backing::File { file: file.clone(), pgoff: 5 }).unwrap();
    /// assert_eq!(file.cached(5), None);
    /// let pfn = mm.fault(0x10_0000, false).unwrap(); // reads file page 5 into the cache
    /// assert_eq!(file.cached(5), Some(pfn));
    /// ```
    pub fn cached(&self, pgoff: u64) -> Option<u64> {
        let _h = Held::take(Class::PageCache);
        self.cache.read().get(&pgoff).copied()
    }

    /// Pages in the page cache.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (mm, file) = (Mm::new(Strategy::Split, &frames), File::new(&frames));
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::Read, Backing::File { file: file.clone(), pgoff: 0 }).unwrap();
    /// mm.gup(0x10_0000, 2 * PAGE_SIZE, false).unwrap();
    /// assert_eq!(file.cached_pages(), 2);
    /// ```
    pub fn cached_pages(&self) -> usize {
        let _h = Held::take(Class::PageCache);
        self.cache.read().len()
    }

    /// Mappings recorded in the rmap.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (mm, file) = (Mm::new(Strategy::Split, &frames), File::new(&frames));
    /// mm.mmap(0x10_0000, PAGE_SIZE, Prot::Read, Backing::File { file: file.clone(), pgoff: 0 }).unwrap();
    /// assert_eq!(file.mappings(), 1);
    /// mm.munmap(0x10_0000, PAGE_SIZE).unwrap();
    /// assert_eq!(file.mappings(), 0);
    /// ```
    pub fn mappings(&self) -> usize {
        let _h = Held::take(Class::IMmap);
        self.i_mmap.read().iter().filter(|e| e.mm.strong_count() != 0).count()
    }

    /// Frees the file's pages in `[offset, offset + len)` (bytes, page
    /// aligned) and unmaps them from every address space that maps them,
    /// freeing PTE tables that become empty where the strategy can.
    ///
    /// Takes, in order: the page cache (alone), then `i_mmap` for read and,
    /// for each mapping, that address space's page-table locks: under Split
    /// the page-table lock in intent mode plus PTLs, under Classic PTLs only,
    /// under Refcount a reference on each PTE table plus its PTL. Never a VMA
    /// lock. Returns the number of page-table entries cleared.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// let frames = FrameAllocator::new();
    /// let (mm, file) = (Mm::new(Strategy::Split, &frames), File::new(&frames));
    /// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::Read, Backing::File { file: file.clone(), pgoff: 0 }).unwrap();
    /// mm.gup(0x10_0000, 2 * PAGE_SIZE, false).unwrap();
    /// assert_eq!(file.punch_hole(PAGE_SIZE, PAGE_SIZE), Ok(1)); // the second page only
    /// assert_eq!((file.cached_pages(), mm.stats().mapped_pages), (1, 1));
    /// assert_eq!(file.punch_hole(1, PAGE_SIZE), Err(MmError::Unaligned { addr: 1 }));
    /// ```
    pub fn punch_hole(&self, offset: u64, len: u64) -> MmResult<u64> {
        if len == 0 {
            return Err(MmError::ZeroLength);
        }
        if !offset.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned { addr: offset });
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(MmError::Unaligned { addr: len });
        }
        let first = offset / PAGE_SIZE;
        let last = first.checked_add(len / PAGE_SIZE).ok_or(MmError::OutOfRange { addr: offset })?;
        // 1. Drop the pages from the page cache. A fault that looks a page up
        //    later allocates a fresh one; a fault that already found it holds
        //    its PTE PTL until the entry is installed, and step 2 takes that
        //    PTL after this step, so it clears the entry.
        {
            let _h = Held::take(Class::PageCache);
            let mut cache = self.cache.write();
            let gone: Vec<u64> = cache.range(first..last).map(|(&k, _)| k).collect();
            for k in &gone {
                cache.remove(k);
            }
            self.frames.free(gone.len() as u64);
        }
        // 2. Unmap through the rmap.
        let mut touched: Vec<Arc<dyn MapsFile>> = Vec::new();
        let mut cleared = 0;
        {
            let _h = Held::take(Class::IMmap);
            let rmap = self.i_mmap.read();
            for e in rmap.iter() {
                let vpages = (e.end - e.start) / PAGE_SIZE;
                let lo = first.max(e.pgoff);
                let hi = last.min(e.pgoff + vpages);
                if lo >= hi {
                    continue;
                }
                let Some(mm) = e.mm.upgrade() else { continue };
                let start = e.start + (lo - e.pgoff) * PAGE_SIZE;
                let end = e.start + (hi - e.pgoff) * PAGE_SIZE;
                cleared += mm.rmap_zap(start, end);
                touched.push(mm);
            }
        }
        // 3. Outside every lock: give deferred tables back where a grace
        //    period can be observed cheaply now.
        for mm in &touched {
            mm.maybe_reclaim();
        }
        Ok(cleared)
    }

    /// Replaces this address space's rmap entries with `entries`.
    pub(crate) fn set_rmap(&self, mm_id: u64, entries: Vec<RmapEntry>) {
        let mut rmap = self.lock_rmap();
        rmap.set(mm_id, entries);
    }

    /// `i_mmap` for write, held until the returned guard drops (mremap
    /// holds it across its move of the entries).
    pub(crate) fn lock_rmap(&self) -> RmapWrite<'_> {
        let _h = Held::take(Class::IMmap);
        RmapWrite { rmap: self.i_mmap.write(), _h }
    }
}

/// A file's `i_mmap`, held for write.
pub(crate) struct RmapWrite<'a> {
    rmap: phase_lock::WriteGuard<'a, Vec<RmapEntry>>,
    _h: Held,
}

impl RmapWrite<'_> {
    /// Replaces address space `mm_id`'s entries (and drops dead ones).
    pub(crate) fn set(&mut self, mm_id: u64, entries: Vec<RmapEntry>) {
        self.rmap.retain(|e| e.mm_id != mm_id && e.mm.strong_count() != 0);
        self.rmap.extend(entries);
    }
}

impl core::fmt::Debug for File {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("File").field("id", &self.id()).finish_non_exhaustive()
    }
}

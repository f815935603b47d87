//! Virtual memory areas and the per-Mm tree of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::file::File;

/// Access permissions of a mapping.
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// mm.mmap(0x10_0000, PAGE_SIZE, Prot::Read, Backing::Anon).unwrap();
/// assert!(mm.fault(0x10_0000, false).is_ok());
/// assert_eq!(mm.fault(0x10_0000, true), Err(MmError::ReadOnly { addr: 0x10_0000 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    /// Reads only: write faults fail with [`MmError::ReadOnly`](crate::MmError::ReadOnly).
    Read,
    /// Reads and writes.
    ReadWrite,
}

impl Prot {
    /// Whether writes are allowed.
    ///
    /// ```
    /// use phase_lock_mm::*;
    /// assert!(Prot::ReadWrite.writable() && !Prot::Read.writable());
    /// ```
    pub fn writable(self) -> bool {
        self == Prot::ReadWrite
    }
}

/// What a mapping maps.
///
/// ```
/// use phase_lock_mm::*;
/// let frames = FrameAllocator::new();
/// let mm = Mm::new(Strategy::Split, &frames);
/// mm.mmap(0x10_0000, PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
/// let file = File::new(&frames);
/// mm.mmap(0x20_0000, PAGE_SIZE, Prot::Read, Backing::File { file, pgoff: 3 }).unwrap();
/// assert!(matches!(mm.vmas()[1].backing, Backing::File { pgoff: 3, .. }));
/// ```
#[derive(Clone, Debug)]
pub enum Backing {
    /// Anonymous memory: each page gets a fresh frame on first touch.
    Anon,
    /// A shared file mapping: page `i` of the VMA maps page `pgoff + i` of
    /// the file's page cache.
    File {
        /// The file.
        file: Arc<File>,
        /// The file offset of the VMA's first page, in pages.
        pgoff: u64,
    },
}

/// A mapping `[start, end)` of an address space.
///
/// ```
/// use phase_lock_mm::*;
/// let mm = Mm::new(Strategy::Split, &FrameAllocator::new());
/// mm.mmap(0x10_0000, 2 * PAGE_SIZE, Prot::ReadWrite, Backing::Anon).unwrap();
/// let v: &Vma = &mm.vmas()[0];
/// assert_eq!((v.start, v.end, v.prot), (0x10_0000, 0x10_0000 + 2 * PAGE_SIZE, Prot::ReadWrite));
/// ```
#[derive(Clone, Debug)]
pub struct Vma {
    /// First address (page aligned).
    pub start: u64,
    /// End address (exclusive, page aligned).
    pub end: u64,
    /// Permissions.
    pub prot: Prot,
    /// Anonymous or file-backed.
    pub backing: Backing,
}

impl Vma {
    /// The file page mapped at `addr` (file mappings only).
    pub(crate) fn file_page(&self, addr: u64) -> Option<(&Arc<File>, u64)> {
        match &self.backing {
            Backing::File { file, pgoff } => Some((file, pgoff + (addr - self.start) / crate::PAGE_SIZE)),
            Backing::Anon => None,
        }
    }

    /// The file, if file-backed.
    pub(crate) fn file(&self) -> Option<&Arc<File>> {
        match &self.backing {
            Backing::File { file, .. } => Some(file),
            Backing::Anon => None,
        }
    }

    /// Splits at `addr` (strictly inside), keeping `[start, addr)` and
    /// returning `[addr, end)`.
    fn split_off(&mut self, addr: u64) -> Vma {
        let mut hi = self.clone();
        hi.start = addr;
        if let Backing::File { pgoff, .. } = &mut hi.backing {
            *pgoff += (addr - self.start) / crate::PAGE_SIZE;
        }
        self.end = addr;
        hi
    }
}

/// The VMAs of one address space, keyed by start.
#[derive(Default, Debug, Clone)]
pub(crate) struct VmaTree {
    map: BTreeMap<u64, Vma>,
}

impl VmaTree {
    /// The VMA containing `addr`.
    pub(crate) fn find(&self, addr: u64) -> Option<&Vma> {
        self.map.range(..=addr).next_back().map(|(_, v)| v).filter(|v| addr < v.end)
    }

    /// The first VMA overlapping `[start, end)`.
    pub(crate) fn first_overlap(&self, start: u64, end: u64) -> Option<&Vma> {
        if let Some(v) = self.find(start) {
            return Some(v);
        }
        self.map.range(start..end).next().map(|(_, v)| v)
    }

    /// Whether `[start, end)` is covered by VMAs without holes; otherwise the
    /// first uncovered address.
    pub(crate) fn check_covered(&self, start: u64, end: u64) -> Result<(), u64> {
        let mut at = start;
        while at < end {
            match self.find(at) {
                Some(v) => at = v.end,
                None => return Err(at),
            }
        }
        Ok(())
    }

    /// Inserts a VMA (the caller checked for overlap).
    pub(crate) fn insert(&mut self, vma: Vma) {
        self.map.insert(vma.start, vma);
    }

    /// Splits VMAs so that `addr` is a boundary.
    pub(crate) fn split_at(&mut self, addr: u64) {
        let key = match self.find(addr) {
            Some(v) if v.start < addr => v.start,
            _ => return,
        };
        let v = self.map.get_mut(&key).expect("found above");
        let hi = v.split_off(addr);
        self.map.insert(addr, hi);
    }

    /// Removes every VMA piece inside `[start, end)`, splitting at the ends;
    /// returns the pieces.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) -> Vec<Vma> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(&k, _)| k).collect();
        keys.into_iter().filter_map(|k| self.map.remove(&k)).collect()
    }

    /// The VMAs inside `[start, end)` (after `split_at` at both ends), mutably.
    pub(crate) fn range_mut(&mut self, start: u64, end: u64) -> impl Iterator<Item = &mut Vma> {
        self.map.range_mut(start..end).map(|(_, v)| v)
    }

    /// Merges VMAs touching `[start, end]` with their neighbours where
    /// permissions and backing continue (anonymous with anonymous; the same
    /// file at the following offset), as the kernel's `vma_merge` does.
    pub(crate) fn merge_around(&mut self, start: u64, end: u64) {
        let lo = self.map.range(..start).next_back().map_or(start, |(&k, _)| k);
        let keys: Vec<u64> = self.map.range(lo..=end).map(|(&k, _)| k).collect();
        let mut cur: Option<u64> = None;
        for k in keys {
            if let Some(c) = cur {
                let (a, b) = (&self.map[&c], &self.map[&k]);
                let joins = a.end == b.start
                    && a.prot == b.prot
                    && match (&a.backing, &b.backing) {
                        (Backing::Anon, Backing::Anon) => true,
                        (Backing::File { file: f, pgoff: p }, Backing::File { file: g, pgoff: q }) => {
                            Arc::ptr_eq(f, g) && p + (a.end - a.start) / crate::PAGE_SIZE == *q
                        }
                        _ => false,
                    };
                if joins {
                    let b = self.map.remove(&k).expect("listed");
                    self.map.get_mut(&c).expect("listed").end = b.end;
                    continue;
                }
            }
            cur = Some(k);
        }
    }

    /// Every VMA, in address order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.map.values()
    }

    /// Whether any VMA overlaps `[start, end)`.
    pub(crate) fn overlaps(&self, start: u64, end: u64) -> bool {
        self.first_overlap(start, end).is_some()
    }
}

//! The page-table freeing protocol, rules R1–R10 of the crate docs, in one
//! place, to be read against them:
//!
//! * R1 (upper levels): `free_tables` (munmap) and `unlink_upper`;
//! * R2 (unlinking): `try_unlink`, under the PMD PTL, with the mode each
//!   strategy requires;
//! * R3 (entering a table): `map_pte`'s recheck of the PMD entry under the
//!   PTE table's PTL, and `PteMap`, the table entered;
//! * R4 (grace periods): `defer`, `reclaim_locked`, `reclaim_held_write`,
//!   `reclaim_refcount`, `maybe_reclaim` (PerVma's RCU callbacks are in
//!   `pervma.rs`);
//! * R5/R6 (rmap walkers, Refcount's references): `put` and
//!   `Table::try_get`;
//! * R7 (VMAs under Split) is a lock rule: `holds.rs`;
//! * R9 (SplitPerVma): `defer` onto the owning VMA's list and
//!   `reclaim_node`; which tables a zapper may unlink is `zap_slot`'s
//!   (`walk.rs`), and the per-VMA locks are `splitvma.rs`;
//! * R10 (lockless walkers): `release_tables` hands every released table to
//!   an RCU callback (`pervma.rs`).
//!
//! Also here: tables allocated but never published (`release_unpublished`)
//! and freeing everything when the address space drops.

use crate::frames::FrameAllocator;
use crate::lockorder::{Class, Held};
use crate::pagetable::DEAD;
use crate::pagetable::next_boundary;
use crate::pagetable::{ENTRIES, FILE, HUGE, Level, PGD_SIZE, PMD_SIZE, PUD_SIZE, PtlGuard, Table, TablePtr, index};
use crate::pervma::VmaNode;
use crate::space::{DEFERRED_CAP, MmInner};
use crate::strategy::Strategy;
use crate::sync::{Ordering, fence};
use crate::vma::VmaTree;
use phase_lock::RawRwLock;

/// What a PMD entry turned out to hold.
pub(crate) enum Pmd<'a> {
    None,
    Huge(u64),
    Pte(PteMap<'a>),
}

/// A mapped PTE table: optionally locked, and pinned under Refcount.
pub(crate) struct PteMap<'a> {
    pub(crate) mm: &'a MmInner,
    pub(crate) pmd: &'a Table,
    pub(crate) idx: usize,
    pub(crate) ptr: TablePtr,
    pub(crate) t: &'a Table,
    pub(crate) guard: Option<PtlGuard<'a>>,
    pub(crate) pinned: bool,
}

impl Drop for PteMap<'_> {
    fn drop(&mut self) {
        // Unlock before the put: a put may unlink, which takes the PMD PTL
        // first (lock order).
        drop(self.guard.take());
        if self.pinned {
            self.mm.put(self.pmd, self.idx, self.ptr);
        }
    }
}

impl MmInner {
    /// munmap's table freeing: unlinks every table in `[start, end)`'s
    /// spans that no VMA overlaps any more (they are empty: the range was
    /// zapped and nothing outside VMAs is ever mapped).
    ///
    /// # Safety
    ///
    /// The VMA lock for write (Split: and the page-table lock for write).
    pub(crate) unsafe fn free_tables(&self, start: u64, end: u64, vmas: &VmaTree) {
        // SAFETY: the caller's locks.
        let pgd = unsafe { self.pgd.get() };
        let mut a = start & !(PGD_SIZE - 1);
        while a < end {
            let gspan = a;
            a = next_boundary(a, PGD_SIZE);
            let gi = index(gspan, Level::Pgd);
            // SAFETY: the caller's locks.
            let Some(pud) = (unsafe { self.child(pgd, gi, false, Level::Pud) }) else { continue };
            let mut b = start.max(gspan) & !(PUD_SIZE - 1);
            while b < end.min(a) {
                let uspan = b;
                b = next_boundary(b, PUD_SIZE);
                let ui = index(uspan, Level::Pud);
                // SAFETY: the caller's locks.
                let Some(pmd) = (unsafe { self.child(pud, ui, false, Level::Pmd) }) else { continue };
                let mut c = start.max(uspan) & !(PMD_SIZE - 1);
                while c < end.min(b) {
                    let mspan = c;
                    c = next_boundary(c, PMD_SIZE);
                    if vmas.overlaps(mspan, c) {
                        continue;
                    }
                    let mi = index(mspan, Level::Pmd);
                    let e = pmd.load(mi, Ordering::Acquire);
                    if e != 0 && e & HUGE == 0 {
                        self.try_unlink(pmd, mi, TablePtr::from_entry(e), None);
                    }
                }
                if !vmas.overlaps(uspan, b) && pmd.present.load(Ordering::Relaxed) == 0 {
                    self.unlink_upper(pud, ui, Level::Pmd);
                }
            }
            if !vmas.overlaps(gspan, a) && pud.present.load(Ordering::Relaxed) == 0 {
                self.unlink_upper(pgd, gi, Level::Pud);
            }
        }
    }

    pub(crate) fn alloc_table(&self) -> TablePtr {
        // Relaxed: statistics.
        self.allocs.fetch_add(1, Ordering::Relaxed);
        TablePtr::alloc()
    }

    /// Releases a table that was never linked.
    pub(crate) fn release_unpublished(&self, t: TablePtr) {
        self.releases.fetch_add(1, Ordering::Relaxed);
        // SAFETY: never published, so no other thread has its address.
        unsafe { t.dealloc() };
    }

    /// Maps the PTE table of `pmd[idx]`: the heart of the protocol (R2, R3).
    ///
    /// With `alloc`, installs a table if the entry is none. With `lock`,
    /// returns with the table's PTL held and (Split) the PMD entry rechecked
    /// after locking. Under Refcount, returns with a reference held.
    pub(crate) fn map_pte<'a>(&'a self, pmd: &'a Table, idx: usize, alloc: bool, lock: bool) -> Pmd<'a> {
        loop {
            // Acquire: pairs with the Release store that linked the table.
            let mut e = pmd.load(idx, Ordering::Acquire);
            let mut pinned = false;
            if e == 0 {
                if !alloc {
                    return Pmd::None;
                }
                let new = self.alloc_table();
                if self.strategy == Strategy::Refcount {
                    // SAFETY: ours alone until linked.
                    // Relaxed: published by the Release store below.
                    unsafe { new.get() }.refs.store(1, Ordering::Relaxed);
                }
                let g = pmd.lock(Class::PmdPtl);
                if pmd.load(idx, Ordering::Relaxed) != 0 {
                    drop(g);
                    self.release_unpublished(new);
                    continue;
                }
                // Release: publishes the initialized table.
                pmd.entries[idx].store(new.entry(), Ordering::Release);
                pmd.present.fetch_add(1, Ordering::Relaxed);
                self.live[Level::Pte as usize].fetch_add(1, Ordering::Relaxed);
                drop(g);
                e = new.entry();
                pinned = self.strategy == Strategy::Refcount;
            }
            if e & HUGE != 0 {
                return Pmd::Huge(e);
            }
            let ptr = TablePtr::from_entry(e);
            // SAFETY: R2/R4: the table may be unlinked from now on (Split,
            // Refcount, PerVma, SplitPerVma) but is released only after a
            // grace period that our hold (intent/read mode, the mmap lock
            // plus the rmap-walker count, an RCU section, or the lock of
            // the VMA whose zappers may unlink it: R9) prevents; Classic
            // never unlinks under our hold.
            let t = unsafe { ptr.get() };
            if self.strategy == Strategy::Refcount && !pinned {
                if !t.try_get() {
                    // Unlinked (DEAD): the entry is being cleared; reload.
                    crate::sync::spin_loop();
                    continue;
                }
                pinned = true;
            }
            crate::pagetable::perturb();
            let guard = lock.then(|| t.lock(Class::PtePtl));
            // R3: Split and PerVma recheck the entry under the PTL. Relaxed: an
            // unlinker clears the entry before it releases this PTL, and our
            // acquisition of the PTL is ordered after that release.
            if self.strategy.rechecks_pmd() && lock && pmd.load(idx, Ordering::Relaxed) != e {
                drop(guard);
                continue;
            }
            if lock || pinned {
                t.check_linked();
            }
            return Pmd::Pte(PteMap { mm: self, pmd, idx, ptr, t, guard, pinned });
        }
    }

    /// Refcount: drops a reference; the last reference to an empty table
    /// unlinks it.
    pub(crate) fn put(&self, pmd: &Table, idx: usize, ptr: TablePtr) {
        // SAFETY: we held a reference until now; the table is released only
        // after a grace period our hold prevents.
        let t = unsafe { ptr.get() };
        // AcqRel: Release so our accesses happen before an unlinker's Acquire
        // CAS; Acquire so a zero we see comes with the `present` count of the
        // user who emptied the table.
        let prev = t.refs.fetch_sub(1, Ordering::AcqRel);
        if prev == 1 && t.present.load(Ordering::Relaxed) == 0 {
            self.try_unlink(pmd, idx, ptr, None);
        }
    }

    /// Unlinks the PTE table `ptr` from `pmd[idx]` if it is still linked
    /// there, empty, and (Refcount) unreferenced; defers its release (R2)
    /// onto `owner`'s list (SplitPerVma: the VMA containing its span, whose
    /// lock the caller holds in intent mode: R9) or the address space's.
    pub(crate) fn try_unlink(&self, pmd: &Table, idx: usize, ptr: TablePtr, owner: Option<&VmaNode>) -> bool {
        let g = pmd.lock(Class::PmdPtl);
        if pmd.load(idx, Ordering::Relaxed) != ptr.entry() {
            return false;
        }
        // SAFETY: linked, and we hold its PMD PTL: nobody else can unlink it.
        let t = unsafe { ptr.get() };
        let tg = t.lock(Class::PtePtl);
        if t.present.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Acquire: every user's accesses (their Release puts) happen before
        // the release of the table.
        if self.strategy == Strategy::Refcount
            && t.refs.compare_exchange(0, DEAD, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return false;
        }
        // Release: uniform with other PMD entry stores; nothing is published.
        pmd.entries[idx].store(0, Ordering::Release);
        pmd.present.fetch_sub(1, Ordering::Relaxed);
        self.live[Level::Pte as usize].fetch_sub(1, Ordering::Relaxed);
        drop(tg);
        drop(g);
        self.defer(ptr, owner);
        true
    }

    /// Queues an unlinked table for release after a grace period: PerVma,
    /// an RCU callback; SplitPerVma, `owner`'s list when given (R9); else
    /// the address space's list.
    pub(crate) fn defer(&self, ptr: TablePtr, owner: Option<&VmaNode>) {
        // SAFETY: unlinked by the caller, not yet released.
        unsafe { ptr.get() }.mark_unlinked();
        if self.strategy == Strategy::PerVma {
            self.pervma.free_table(ptr);
        } else {
            let _h = Held::take(Class::Deferred);
            match owner {
                Some(n) => n.deferred.write().push(ptr),
                None => self.deferred.write().push(ptr),
            }
            // Relaxed: a hint (and a statistic); each list is under its lock.
            self.deferred_len.fetch_add(1, Ordering::Relaxed);
        }
        // Relaxed: statistics.
        let now = self.deferred_len.load(Ordering::Relaxed) + self.pervma.pending();
        self.peak_deferred.fetch_max(now, Ordering::Relaxed);
    }

    /// Releases every table on the address space's deferred list.
    ///
    /// # Safety
    ///
    /// A grace period (R4): no thread holds a pointer to a deferred table
    /// obtained from an entry, nor can obtain one.
    pub(crate) unsafe fn reclaim_locked(&self) {
        // Relaxed: a hint.
        if self.deferred_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let list = {
            let _h = Held::take(Class::Deferred);
            core::mem::take(&mut *self.deferred.write())
        };
        // SAFETY: the caller's grace period.
        unsafe { self.release_tables(list) };
    }

    /// SplitPerVma: releases the tables `node`'s zappers deferred (R9).
    ///
    /// # Safety
    ///
    /// The caller holds `node`'s page-table lock in read or write mode.
    pub(crate) unsafe fn reclaim_node(&self, node: &VmaNode) {
        let list = {
            let _h = Held::take(Class::Deferred);
            core::mem::take(&mut *node.deferred.write())
        };
        // SAFETY: R9: only holders of `node`'s lock could reach these tables
        // (their spans lie inside its VMA), and read or write mode excludes
        // every intent holder; later ones read the cleared entries.
        unsafe { self.release_tables(list) };
    }

    /// Releases unlinked tables taken off a deferred list, after an RCU
    /// grace period on top of the strategy's own: lockless walkers
    /// (GUP-fast) hold no lock, only an RCU section (R10).
    ///
    /// # Safety
    ///
    /// A grace period for each of them (R4).
    unsafe fn release_tables(&self, list: Vec<TablePtr>) {
        if list.is_empty() {
            return;
        }
        // Relaxed: a hint and a statistic.
        self.deferred_len.fetch_sub(list.len() as u64, Ordering::Relaxed);
        // The callback poisons (quarantine) or frees them, and counts them.
        self.pervma.free_tables(list);
    }

    /// Releases deferred tables while the caller holds the write lock that
    /// fits the strategy (VMA lock for Classic and Refcount, page-table lock
    /// for Split; under SplitPerVma, the VMA lock for write in `munmap`,
    /// after publishing).
    ///
    /// # Safety
    ///
    /// That lock is held for write.
    pub(crate) unsafe fn reclaim_held_write(&self) {
        match self.strategy {
            // SAFETY: R4 (Split: write excludes every walker; Classic: R5;
            // SplitPerVma: the address space's list holds only tables
            // `munmap` unlinked where no VMA is any more, which no VMA's
            // holder can reach, the rmap walkers have been waited out (R5),
            // and semi-locked walkers are excluded by the VMA lock: R9).
            Strategy::Classic | Strategy::Split | Strategy::SplitPerVma => unsafe { self.reclaim_locked() },
            Strategy::Refcount => self.reclaim_refcount(),
            // RCU callbacks release PerVma's tables.
            Strategy::PerVma => {}
        }
    }

    /// Refcount's grace period: the mmap lock for write (the caller holds
    /// it) and no rmap walker inside (R6).
    pub(crate) fn reclaim_refcount(&self) {
        if self.deferred_len.load(Ordering::Relaxed) == 0 {
            return;
        }
        // SeqCst fence: Dekker with `rmap_zap` (R6).
        fence(Ordering::SeqCst);
        // Acquire: walkers that left did so with a Release decrement.
        if self.rmap_walkers.load(Ordering::Acquire) != 0 {
            return;
        }
        // SAFETY: R6: mmap-read users are excluded by the write lock, and no
        // rmap walker is inside or can find an unlinked table.
        unsafe { self.reclaim_locked() };
    }

    /// Releases deferred tables if a grace period can be had without
    /// waiting. Called holding no lock.
    pub(crate) fn maybe_reclaim(&self) {
        if self.deferred_len.load(Ordering::Relaxed) == 0 && self.pervma.pending() == 0 {
            return;
        }
        match self.strategy {
            Strategy::SplitPerVma => self.reclaim_vmas(false),
            Strategy::Split => {
                let _h = Held::take(Class::PageTable);
                if let Some(_g) = self.pt.try_read() {
                    // SAFETY: R4: read mode excludes every intent holder.
                    unsafe { self.reclaim_locked() };
                }
            }
            Strategy::PerVma => self.pervma.expedite(),
            Strategy::Refcount | Strategy::Classic => {
                let _h = Held::take(Class::Vma);
                if let Some(_g) = self.vmas.try_write() {
                    // SAFETY: the VMA lock is held for write.
                    unsafe { self.reclaim_held_write() };
                }
            }
        }
        // The other strategies' RCU callbacks (R10) run as later ones are
        // queued, or in `stats`: trying to end a grace period after every
        // DONTNEED would make the zappers contend on the global epoch.
        self.wait_past_cap();
    }

    /// Past [`DEFERRED_CAP`] tables in a stage of freeing, waits for that
    /// stage to end instead of trying for it (the bound of
    /// `MmStats::peak_deferred_tables`). Called holding no lock.
    fn wait_past_cap(&self) {
        if self.deferred_len.load(Ordering::Relaxed) >= DEFERRED_CAP {
            match self.strategy {
                Strategy::Split => {
                    let _h = Held::take(Class::PageTable);
                    let _g = self.pt.read();
                    // SAFETY: R4: read mode excludes every intent holder.
                    unsafe { self.reclaim_locked() };
                }
                Strategy::SplitPerVma => self.reclaim_vmas(true),
                Strategy::Classic | Strategy::Refcount => {
                    // Refcount also needs a moment with no rmap walker (R6).
                    for _ in 0..64 {
                        {
                            let _h = Held::take(Class::Vma);
                            let _g = self.vmas.write();
                            // SAFETY: the VMA lock is held for write.
                            unsafe { self.reclaim_held_write() };
                        }
                        if self.deferred_len.load(Ordering::Relaxed) < DEFERRED_CAP {
                            break;
                        }
                        crate::sync::spin_loop();
                    }
                }
                // PerVma's tables go to RCU at once.
                Strategy::PerVma => {}
            }
        }
        if self.pervma.pending() >= DEFERRED_CAP {
            self.pervma.settle();
        }
    }

    /// SplitPerVma: releases the tables of every VMA with some waiting,
    /// taking each VMA's lock in read mode (R9): by a try-lock, or, with
    /// `wait`, blocking. The VMAs are pinned under RCU and locked outside
    /// it; not under the mmap lock, which would wait for layout changes.
    /// Called holding no lock.
    fn reclaim_vmas(&self, wait: bool) {
        let waiting: Vec<_> = {
            let _rcu = self.pervma.rcu.read();
            let _h = Held::take(Class::Deferred);
            // SAFETY: inside `_rcu`.
            unsafe { self.pervma.current() }.nodes.values().filter(|n| !n.deferred.read().is_empty()).cloned().collect()
        };
        let _h = Held::take(Class::PageTable);
        for n in waiting {
            let held = if wait { Some(n.pt.lock_shared()) } else { n.pt.try_lock_shared() };
            if let Some(g) = held {
                // SAFETY: R9: read mode held.
                unsafe { self.reclaim_node(&n) };
                // SAFETY: our read acquisition, released once.
                unsafe { n.pt.unlock_shared(g) };
            }
        }
    }

    /// Unlinks the empty table at `parent[i]` (a PUD or PMD table) under the
    /// upper lock and defers it.
    pub(crate) fn unlink_upper(&self, parent: &Table, i: usize, level: Level) {
        let g = PtlGuard::new(&self.upper, Class::Upper);
        let e = parent.load(i, Ordering::Relaxed);
        if e == 0 {
            return;
        }
        let ptr = TablePtr::from_entry(e);
        // SAFETY: linked, and only we unlink upper tables (write lock held).
        if unsafe { ptr.get() }.present.load(Ordering::Relaxed) != 0 {
            return;
        }
        parent.entries[i].store(0, Ordering::Release);
        parent.present.fetch_sub(1, Ordering::Relaxed);
        self.live[level as usize].fetch_sub(1, Ordering::Relaxed);
        drop(g);
        self.defer(ptr, None);
    }
}

impl Table {
    /// Refcount: takes a reference unless the table is unlinked.
    fn try_get(&self) -> bool {
        let mut c = self.refs.load(Ordering::Relaxed);
        loop {
            if c & DEAD != 0 {
                return false;
            }
            // Acquire: pairs with the Release of earlier puts (not needed for
            // the entries, which the PTL orders, but keeps the count's
            // history simple). Relaxed on failure: we retry.
            match self.refs.compare_exchange_weak(c, c + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
    }
}

impl Drop for MmInner {
    fn drop(&mut self) {
        // `&mut self`: no other thread can reach this address space.
        fn free(t: TablePtr, level: Level, frames: &FrameAllocator) -> u64 {
            // SAFETY: exclusive access at drop; each table is freed once,
            // after its children.
            let table = unsafe { t.get() };
            let mut n = 1;
            for slot in &table.entries {
                let e = slot.load(Ordering::Relaxed);
                if e == 0 {
                    continue;
                }
                if level == Level::Pte || e & HUGE != 0 {
                    if e & FILE == 0 {
                        frames.free(if e & HUGE != 0 { ENTRIES as u64 } else { 1 });
                    }
                    continue;
                }
                let child = match level {
                    Level::Pgd => Level::Pud,
                    Level::Pud => Level::Pmd,
                    _ => Level::Pte,
                };
                n += free(TablePtr::from_entry(e), child, frames);
            }
            // SAFETY: unreachable now.
            unsafe { t.dealloc() };
            n
        }
        free(self.pgd, Level::Pgd, &self.frames);
        for p in core::mem::take(self.deferred.get_mut()) {
            // SAFETY: unreachable, no other thread; each table is in one list
            // once.
            unsafe { p.dealloc() };
        }
    }
}

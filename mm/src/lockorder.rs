//! The module's one lock order, checked in debug builds.
//!
//! Every lock `mm` takes belongs to a [`Class`]; a thread may only take a lock
//! whose class is *greater* than every class it already holds. Debug builds
//! (outside loom, whose threads share one OS thread) keep a per-thread list of
//! held classes and panic on a violation, naming both classes. Try-locks are
//! checked too: the order is a property of the design, not of who blocks.

/// A lock class, in acquisition order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Class {
    /// The VMA lock (under Classic and Refcount: the whole mmap lock).
    Vma = 1,
    /// A file's `i_mmap` lock (its rmap).
    IMmap = 2,
    /// The Split strategy's page-table `PhaseLock`.
    PageTable = 3,
    /// The per-Mm lock for the upper levels (PGD and PUD entries).
    Upper = 4,
    /// A PMD table's split lock.
    PmdPtl = 5,
    /// A PTE table's split lock.
    PtePtl = 6,
    /// A file's page cache (taken under a PTE PTL while faulting).
    PageCache = 7,
    /// The list of unlinked tables awaiting release.
    Deferred = 8,
}

/// Proof that a lock of some class is held; releases the class when dropped.
#[must_use]
pub(crate) struct Held {
    #[cfg(all(debug_assertions, not(phase_lock_loom)))]
    class: Class,
}

impl Held {
    /// Records that the current thread is about to take (or has just taken)
    /// a lock of `class`.
    ///
    /// # Panics
    ///
    /// In debug builds, when the thread already holds a lock of an equal or
    /// greater class: a bug in `mm`, never a consequence of bad input.
    #[inline]
    #[cfg_attr(not(all(debug_assertions, not(phase_lock_loom))), allow(unused_variables))]
    pub(crate) fn take(class: Class) -> Held {
        #[cfg(all(debug_assertions, not(phase_lock_loom)))]
        {
            imp::take(class);
            Held { class }
        }
        #[cfg(not(all(debug_assertions, not(phase_lock_loom))))]
        Held {}
    }
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        #[cfg(all(debug_assertions, not(phase_lock_loom)))]
        imp::release(self.class);
    }
}

#[cfg(all(debug_assertions, not(phase_lock_loom)))]
mod imp {
    use super::Class;
    use std::cell::RefCell;

    thread_local! {
        static HELD: RefCell<Vec<Class>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn take(class: Class) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(&top) = h.iter().max() {
                assert!(
                    top < class,
                    "mm lock order violated: taking {class:?} while holding {top:?} \
                     (order: Vma → IMmap → PageTable → Upper → PmdPtl → PtePtl → PageCache → Deferred)"
                );
            }
            h.push(class);
        });
    }

    pub(super) fn release(class: Class) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|&c| c == class) {
                h.remove(i);
            }
        });
    }
}

#[cfg(all(test, debug_assertions, not(phase_lock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn in_order_is_fine() {
        let _a = Held::take(Class::Vma);
        let _b = Held::take(Class::PageTable);
        let _c = Held::take(Class::PtePtl);
    }

    #[test]
    #[should_panic(expected = "lock order violated")]
    fn out_of_order_panics() {
        let _a = Held::take(Class::PtePtl);
        let _b = Held::take(Class::PmdPtl);
    }
}

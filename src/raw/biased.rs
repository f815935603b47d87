//! [`RawPatientLock`]'s side of biased shared phases: the calls from its
//! fast and slow paths into the process-wide slot table of `bias.rs`, and
//! the handoff owed after a revocation drops the bias hold.

use crate::bias::{self, Published, SharedHold};
use crate::state::{Kind, WAITING_MASK};

use super::RawPatientLock;

impl<const PATIENCE_US: u32, const BIAS: bool> RawPatientLock<PATIENCE_US, BIAS> {
    /// This lock's address, the key of its tags in the slot table.
    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// The fast path failed on a lock that looked biased (`s`): enter
    /// through the table if the bias is toward `kind`, else revoke it.
    /// `None`: decide on the counted paths.
    #[inline(never)]
    pub(super) fn enter_biased(&self, kind: Kind, s: u64) -> Option<SharedHold> {
        match bias::enter(&self.state, self.addr(), kind, s) {
            Some(Published::Entered(hold)) => Some(hold),
            Some(Published::Moved) => Some(SharedHold::COUNTED),
            Some(Published::No) => None,
            None => {
                self.revoke();
                None
            }
        }
    }

    /// Releases a shared hold of `kind`: through its slot if it is
    /// published (and still there), else counted.
    ///
    /// # Safety
    ///
    /// The caller holds the lock in `kind` through `hold`.
    #[inline]
    pub(crate) unsafe fn release_shared(&self, kind: Kind, hold: SharedHold, fair: bool) {
        if hold.is_published() && bias::release(self.addr(), kind, &hold) {
            return;
        }
        // SAFETY: the hold is counted, by the caller's contract, or was
        // moved into the count by a revoker (and `bias::release` cleared its
        // slot).
        unsafe { self.release(kind, fair) }
    }

    /// Called after a counted entry of `kind` that lost a race beside
    /// another holder of `kind`: maybe biases the lock (`bias::maybe_bias`).
    #[cold]
    pub(crate) fn maybe_bias(&self, kind: Kind) {
        if BIAS {
            bias::maybe_bias(&self.state, self.addr(), kind);
        }
    }

    /// Ends the bias, if the lock is biased, and hands the lock off if
    /// dropping the bias hold ended the phase with waiters queued.
    ///
    /// May be called with the queue lock held (from `enter_or_wait`): a
    /// biased lock has no waiters, and none can queue while we hold the queue
    /// lock, so dropping the bias hold never needs to settle then.
    #[cold]
    pub(super) fn revoke(&self) {
        if let Some((kind, prev)) = bias::revoke(&self.state, self.addr())
            && prev & WAITING_MASK != 0
        {
            self.release_contended(prev, kind, false);
        }
    }

    /// `is_locked` for a biased lock in state `s`.
    pub(super) fn biased_is_locked(&self, s: u64) -> bool {
        bias::is_locked(s, self.addr())
    }

    /// `Drop`: clears the slots of leaked published guards of a biased lock.
    pub(super) fn forget_published(&self) {
        bias::forget(self.addr());
    }
}

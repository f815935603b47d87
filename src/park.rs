//! Parking a queued waiter until it is admitted, and waking it.
//!
//! Each queued waiter owns one [`Parker`] on its own stack; it spins for
//! about 100 ns and then parks ([`SpinWait::before_parking`] says why it
//! never yields). The thread that
//! admits it calls [`Waker::wake`] exactly once. A parker's word moves
//! `WAITING → PARKED` (the waiter is about to sleep) and `→ ADMITTED` (the
//! lock is now the waiter's) or `→ RETRY` (a patient lock woke the waiter to
//! try again, without handing it the lock). Both are final until the waiter
//! itself calls [`Parker::reset`] to wait again.
//!
//! * Linux: the word is a futex (`FUTEX_PRIVATE_FLAG`). A waker issues
//!   `FUTEX_WAKE` only if the waiter announced that it sleeps, so a waiter
//!   that is still spinning costs its waker no system call, and each wake
//!   reaches exactly the one thread being admitted.
//! * Other targets, and loom: the waiter's `Thread` handle is parked and
//!   unparked (no allocation: cloning a handle bumps a reference count).
//!   `RUSTFLAGS="--cfg phase_lock_portable_parker"` selects this path on
//!   Linux too, so that CI tests it.
//! * `RUSTFLAGS="--cfg phase_lock_spurious_wakeups"` (tests only) makes a
//!   quarter of the sleeps return at once, as real futex waits sometimes do.

use std::time::Instant;

use crate::sync::{AtomicU32, Ordering};
#[cfg(any(phase_lock_model, not(target_os = "linux"), phase_lock_portable_parker))]
use crate::sync::{Thread, current_thread};

/// The waiter has neither slept nor been admitted.
const WAITING: u32 = 0;
/// The waiter sleeps, or is about to; a waker must issue a wake-up.
const PARKED: u32 = 1;
/// The waiter owns the lock. Final.
const ADMITTED: u32 = 2;
/// The waiter was unlinked from the queue and woken to try again; it owns
/// nothing. Final until the waiter resets its parker.
const RETRY: u32 = 3;

/// Bounded busy-waiting, then (optionally) yielding, before a request
/// queues or a waiter parks.
pub(crate) struct SpinWait {
    counter: u32,
    spin_rounds: u32,
    yield_rounds: u32,
    /// Round `n` spins `2^n` hints (exponential backoff), or one hint.
    backoff: bool,
}

impl SpinWait {
    /// Before parking: two short rounds of spin hints (about 100 ns), then
    /// give up and park. No yielding: on an oversubscribed machine a waiter
    /// that yields and is admitted meanwhile sits at the back of the run
    /// queue while it owns the lock, holding the whole phase open; a parked
    /// waiter is woken with the scheduler's wake-up preference instead.
    /// (`docs/design.md` has the measurement.)
    pub(crate) const fn before_parking() -> Self {
        SpinWait { counter: 0, spin_rounds: 2, yield_rounds: 0, backoff: true }
    }

    /// Before queueing on a patient lock: 30 polls one spin hint apart
    /// (about a microsecond), then up to seven yields, retrying the lock
    /// after each. Critical sections are often far shorter than a wake-up; a
    /// request that finds the lock compatible within that window skips the
    /// queue and the sleep entirely. Yielding is right here, unlike before
    /// parking (see [`SpinWait::before_parking`]): the request is not queued,
    /// so nothing can be handed to it while it sits in the run queue, and on
    /// an oversubscribed machine the yield lets a descheduled holder finish.
    ///
    /// Polls one hint apart rather than backing off: a lock that changes
    /// kind is free only between one holder's release and the next barging
    /// entry, a window about as long as the work done outside the lock,
    /// which a request that checks every 2^n hints sleeps through
    /// (`docs/design.md`, "Why arrivals poll without backing off").
    pub(crate) const fn before_queueing() -> Self {
        SpinWait { counter: 0, spin_rounds: 30, yield_rounds: 7, backoff: false }
    }

    /// Waits a little: spin hints (`2^n` in round `n` when backing off, else
    /// one), then yields. Returns `false` once the budget is spent.
    #[inline]
    pub(crate) fn spin(&mut self) -> bool {
        if self.counter >= self.spin_rounds + self.yield_rounds {
            return false;
        }
        self.counter += 1;
        if cfg!(phase_lock_model) || self.counter > self.spin_rounds {
            crate::sync::yield_now();
        } else {
            let hints = if self.backoff { 1u32 << self.counter } else { 1 };
            for _ in 0..hints {
                crate::sync::spin_loop();
            }
        }
        true
    }
}

/// One waiter's wake-up channel. Lives on the waiter's stack.
pub(crate) struct Parker {
    word: AtomicU32,
    #[cfg(any(phase_lock_model, not(target_os = "linux"), phase_lock_portable_parker))]
    thread: Thread,
}

/// What a waker needs to admit one waiter, taken before the waiter is
/// admitted (after that, the waiter's stack frame may be gone).
pub(crate) struct Waker {
    word: *const AtomicU32,
    #[cfg(any(phase_lock_model, not(target_os = "linux"), phase_lock_portable_parker))]
    thread: Thread,
}

/// What a wake-up tells the waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The lock is now the waiter's (a handoff).
    Admitted,
    /// Try again: a patient lock was left free, and the waiter owns nothing.
    Retry,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// [`Waker::wake`] was called with the lock: it is the waiter's.
    Admitted,
    /// [`Waker::wake`] was called without the lock: try again.
    Retry,
    /// The deadline passed first.
    TimedOut,
}

impl Parker {
    /// A parker for the current thread.
    pub(crate) fn new() -> Self {
        Parker {
            word: AtomicU32::new(WAITING),
            #[cfg(any(phase_lock_model, not(target_os = "linux"), phase_lock_portable_parker))]
            thread: current_thread(),
        }
    }

    /// Captures what [`Waker::wake`] needs. Call before the waiter can be
    /// admitted by anybody else (that is, while holding the queue lock).
    pub(crate) fn waker(&self) -> Waker {
        Waker {
            word: &self.word,
            #[cfg(any(phase_lock_model, not(target_os = "linux"), phase_lock_portable_parker))]
            thread: self.thread.clone(),
        }
    }

    /// Waits until admitted or until `deadline` (`None`: forever).
    ///
    /// Must be called on the thread that created the parker.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> WaitResult {
        // Under a model checker, spinning only multiplies the interleavings to explore.
        let mut spin = SpinWait::before_parking();
        loop {
            // Acquire: pairs with the waker's release swap, so everything the
            // admitting thread (and every holder before it) wrote is visible.
            if let Some(woken) = woken(self.word.load(Ordering::Acquire)) {
                return woken;
            }
            if cfg!(phase_lock_model) || !spin.spin() {
                break;
            }
        }
        // Announce the sleep (a waiter that was woken and reset may already
        // be PARKED). Acquire on failure for the same reason as above.
        if let Err(now) = self.word.compare_exchange(WAITING, PARKED, Ordering::Acquire, Ordering::Acquire)
            && let Some(woken) = woken(now)
        {
            return woken;
        }
        loop {
            if !self.sleep_or_return_spuriously(deadline) {
                return WaitResult::TimedOut;
            }
            if let Some(woken) = woken(self.word.load(Ordering::Acquire)) {
                return woken;
            }
        }
    }

    /// After [`WaitResult::Retry`]: makes the parker ready for another wait.
    ///
    /// Only the owning thread calls this, after its waker has stored `RETRY`
    /// and so is done with the word (a late `FUTEX_WAKE` on its address is a
    /// harmless spurious wake-up).
    pub(crate) fn reset(&self) {
        // Relaxed: only this thread reads the word until the waiter is linked
        // again, which happens under the queue lock.
        self.word.store(WAITING, Ordering::Relaxed);
    }

    /// [`Parker::sleep`], except that in the test mode of `spurious` a
    /// quarter of the calls return at once without sleeping.
    #[inline]
    fn sleep_or_return_spuriously(&self, deadline: Option<Instant>) -> bool {
        #[cfg(all(not(phase_lock_model), phase_lock_spurious_wakeups))]
        if spurious::now() {
            return deadline.is_none_or(|d| Instant::now() < d);
        }
        self.sleep(deadline)
    }

    /// Sleeps while the word is `PARKED`. Returns `false` if the deadline has
    /// passed; spurious returns are allowed.
    #[cfg(all(not(phase_lock_model), target_os = "linux", not(phase_lock_portable_parker)))]
    fn sleep(&self, deadline: Option<Instant>) -> bool {
        let timeout = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                None => return false,
                Some(left) if left.is_zero() => return false,
                Some(left) => Some(left),
            },
        };
        crate::park::futex::wait(&self.word, PARKED, timeout);
        true
    }

    #[cfg(all(not(phase_lock_model), any(not(target_os = "linux"), phase_lock_portable_parker)))]
    fn sleep(&self, deadline: Option<Instant>) -> bool {
        match deadline {
            None => std::thread::park(),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                None => return false,
                Some(left) if left.is_zero() => return false,
                Some(left) => crate::sync::park_timeout(left),
            },
        }
        true
    }

    /// The model checkers have no clock: a timed wait lasts one turn (a
    /// yield), plus under shuttle a number of turns the schedule draws
    /// (`sync::timer_turns`), and returns early if woken. So the models
    /// explore both outcomes of the race between a deadline (or a patience)
    /// and a handoff, and every timer fires in the end; only an untimed wait
    /// that nobody ends is a deadlock.
    #[cfg(phase_lock_model)]
    fn sleep(&self, deadline: Option<Instant>) -> bool {
        if deadline.is_none() {
            crate::sync::park();
            return true;
        }
        for _ in 0..=crate::sync::timer_turns() {
            crate::sync::yield_now();
            if woken(self.word.load(Ordering::Acquire)).is_some() {
                return true;
            }
        }
        false
    }
}

/// Test mode (`RUSTFLAGS="--cfg phase_lock_spurious_wakeups"`): a quarter of
/// the sleeps return at once, as a futex wait may on `EINTR` or an unrelated
/// wake-up, so that the tests run every caller's recheck loop.
#[cfg(all(not(phase_lock_model), phase_lock_spurious_wakeups))]
mod spurious {
    use std::cell::Cell;

    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }

    /// Whether this sleep returns spuriously: one in four, from a per-thread
    /// xorshift generator seeded by the address of its state.
    pub(super) fn now() -> bool {
        STATE.with(|c| {
            let mut x = c.get();
            if x == 0 {
                x = (c as *const Cell<u64> as u64) | 1;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.set(x);
            x % 4 == 0
        })
    }
}

/// What a parker word says about the wait: `None` while still waiting.
#[inline]
fn woken(word: u32) -> Option<WaitResult> {
    match word {
        ADMITTED => Some(WaitResult::Admitted),
        RETRY => Some(WaitResult::Retry),
        _ => None,
    }
}

impl Waker {
    /// Wakes the waiter: `wake` says whether the lock is now its own
    /// (a handoff) or whether it must try again (a patient lock's wake-up).
    ///
    /// # Safety
    ///
    /// The parker this waker came from must still be alive, which holds as
    /// long as nobody else has woken it: its owner cannot return before it
    /// sees `ADMITTED` or `RETRY`, which only this call stores. Call at most
    /// once per wait.
    pub(crate) unsafe fn wake(self, wake: Wake) {
        // SAFETY: the parker is alive until it observes ADMITTED (caller's
        // contract); after the swap below this function touches only the
        // word's address, never its memory.
        let word = unsafe { &*self.word };
        // Release: the waiter's acquire load of ADMITTED must see the lock
        // state this handoff established.
        let prev = word.swap(
            match wake {
                Wake::Admitted => ADMITTED,
                Wake::Retry => RETRY,
            },
            Ordering::Release,
        );
        #[cfg(all(not(phase_lock_model), target_os = "linux", not(phase_lock_portable_parker)))]
        if prev == PARKED {
            // The address may already be reused by the time the kernel looks
            // at it; a private FUTEX_WAKE only hashes the address, and every
            // futex waiter tolerates spurious wake-ups.
            crate::park::futex::wake_one(self.word);
        }
        #[cfg(any(phase_lock_model, not(target_os = "linux"), phase_lock_portable_parker))]
        {
            let _ = prev;
            self.thread.unpark();
        }
    }
}

#[cfg(all(not(phase_lock_model), target_os = "linux", not(phase_lock_portable_parker)))]
mod futex {
    //! The two futex operations, through `libc`.
    use std::time::Duration;

    use crate::sync::AtomicU32;

    /// Sleeps while `*word == expected`, for at most `timeout`.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            // Saturate: a timeout of centuries is "forever" for our purposes.
            tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(core::ptr::null(), |ts| ts as *const libc::timespec);
        // SAFETY: `word` is a valid, aligned 32-bit atomic for the duration of
        // the call; `ts_ptr` is null or points to a live timespec. The result
        // (woken, EAGAIN, EINTR, ETIMEDOUT) is ignored: the caller rechecks.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                ts_ptr,
            );
        }
    }

    /// Wakes at most one thread sleeping on `word`.
    pub(super) fn wake_one(word: *const AtomicU32) {
        // SAFETY: FUTEX_WAKE does not dereference the address for a private
        // futex; a stale address at worst wakes a waiter that rechecks.
        unsafe {
            libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
        }
    }
}

//! Biased shared phases: read and intent holders that do not share a cache
//! line (the visible-readers design of BRAVO, Dice & Kogan 2019, for both
//! shared kinds, with folly's migration of published holders on revocation).
//!
//! # The idea
//!
//! Every counted shared acquisition writes the state word, so two threads
//! taking the same lock in the same shared kind bounce its cache line. A
//! *biased* phase lets its kind enter without writing the lock at all:
//!
//! * **Publish.** A request of the bias's kind claims one word of a
//!   process-wide table, hashed from (thread, lock), by a compare-and-swap
//!   from `0` to the lock's *tag* (its address with the kind in the low
//!   bits). Then it reads the state word: if the lock is still biased toward
//!   its kind, it holds the lock; its guard carries the slot. Leaving is a
//!   compare-and-swap of its own slot back to `0`. Slots of different threads
//!   sit on different cache lines with probability 1 − 1/128 per pair, so
//!   holders on different CPUs touch no common line.
//! * **Bias.** A phase becomes biased (`BIASED`) only when concurrency has been
//!   seen: a counted entry of a shared kind whose fast compare-and-swap lost a
//!   race, with another holder of its kind present, nobody queued, and the
//!   lock's *inhibition* over. The phase then owns one extra holder of its
//!   kind, the **bias hold**, so that in the state word the lock stays held
//!   in that kind for as long as the bias (and the revocation after it)
//!   lasts. A thread that uses a lock alone never loses a race, so it never
//!   biases it, and alternating reads and writes by one thread never pay for
//!   a table scan.
//! * **Revoke.** Any request of another kind (a writer, or the other shared
//!   kind) that finds the lock biased first revokes the bias, try-locks and
//!   timed requests included: it swaps `BIASED` for `REVOKING`, scans the
//!   table for the lock's tag and **moves** every published holder it finds
//!   into the holder count (count first, then mark the slot *moved*; a holder
//!   whose slot is marked moved leaves by a counted release). Then it drops
//!   the bias hold exactly as a holder leaves, which ends the phase if it was
//!   the last and hands the lock off by the usual rules. Revocation never
//!   waits for a holder: it costs one scan of the table, whatever the holders
//!   do, so try-locks stay wait-free and timeouts stay exact.
//! * **Inhibit.** After a revocation that took `t`, the lock (a cell hashed
//!   from its address) may not be biased again for `INHIBIT_FACTOR` × `t`,
//!   so a workload that keeps revoking spends at most one part in
//!   `INHIBIT_FACTOR + 1` of its time scanning (BRAVO's bound).
//!
//! # Fairness
//!
//! `BIASED` is set only while nobody waits, and cleared before anybody can
//! queue (a request of another kind revokes before it queues; queueing is a
//! compare-and-swap that fails while `BIASED` is set, and nobody biases a
//! lock while its queue lock is held). So while published holders can enter,
//! the contract of fairness.rs lets every request of the running kind enter
//! anyway: with nobody queued, a compatible request enters. Revocation turns
//! the published holders into counted ones, the phase then ends when they
//! leave, exactly as an unbiased phase would, and the bound of fairness.rs is
//! unchanged: the revoking request's wait before it queues is one table
//! scan, not a phase.
//!
//! # The handshake (memory orderings)
//!
//! A publisher writes its slot, then reads the state word; a revoker writes
//! the state word (clears `BIASED`), then reads the slots. This is a
//! store→load (Dekker) pair: without a full barrier on both sides, each could
//! miss the other's write, and a publisher would hold the lock unseen by the
//! revoker, beside a writer. Both writes are `SeqCst` RMWs and both reads
//! `SeqCst` loads, which forbids that outcome (the four operations are in one
//! total order consistent with program order and coherence). loom checks the
//! same handshake through `sync::dekker_fence`; see there.
//!
//! The other orderings:
//!
//! * the publisher's `SeqCst` state load is an acquire that reads a value in
//!   the release sequence of the last release of another kind (every write
//!   of the state word is an RMW), so a published holder sees what the
//!   previous phase wrote;
//! * a published holder leaves with a release compare-and-swap, which the
//!   revoker's acquire load of that slot reads before it drops the bias hold
//!   with a release: the next phase sees what published holders wrote (intent
//!   holders write under their finer locks);
//! * a moved holder's release is the normal counted release.
//!
//! # Cost
//!
//! The table holds `SLOTS` = 1024 words: **8 KiB** for the whole process,
//! shared by every lock, plus 64 inhibition cells (1.5 KiB). A revocation
//! reads all 1024 words once, in address order: 128 cache lines, linear in
//! the table's size and independent of the number of locks and of threads
//! (about 1 µs on a 2-CPU machine: `docs/design.md`, with the measured
//! alternatives). A compile-time size keeps the index computation free of
//! loads. Collisions only send a request to the counted path: with
//! `T` threads holding one lock at once, about `T²/2048` pairs collide.
//! The read path costs one compare-and-swap on the thread's own slot, one
//! load of the state word (shared, read-only while the bias lasts) and one
//! compare-and-swap to leave, whatever the number of CPUs.
//!
//! On bigger machines the read path touches no line written by another
//! CPU, so its cost stays the one-CPU cost, and a revocation costs about one
//! remote line per line holding a live publication; `docs/design.md` models
//! 16, 64 and 256 cores. The inhibition below bounds revoking to one part in
//! ten of the time.
//!
//! # Stale slots
//!
//! A slot holds a lock's tag only while a guard published there is alive, and
//! a guard borrows its lock, so a lock cannot be dropped under a live
//! published guard. A *leaked* guard (`mem::forget`) leaves its tag behind:
//! dropping a biased lock therefore clears every slot still tagged with its
//! address, so a new lock built at the same address trusts no stale slot. (A
//! lock that is itself leaked with a leaked guard cannot do this; its memory
//! is never reused unless the program frees it without dropping the lock.)

use std::time::{Duration, Instant};

use crate::state::{
    BIASED, HOLDERS_MASK, Kind, NO_HANDOFF_OWED, QUEUE_LOCKED, REVOKING, STRICT, WAITING_MASK, holders, holding_kind,
};
use crate::sync::{AtomicU64, Ordering, dekker_fence, slot_table, thread_token};

/// Slots in the process-wide table (2 under the model checkers, so that threads collide).
#[cfg(not(phase_lock_model))]
pub(crate) const SLOTS: usize = 1024;
/// Slots in the process-wide table (2 under the model checkers, so that threads collide).
#[cfg(phase_lock_model)]
pub(crate) const SLOTS: usize = 2;

/// A slot's tag bit: the revoker has counted this holder (it leaves by a
/// counted release). Tags are lock addresses (8-aligned) with the kind in
/// bits 0–1, so bit 2 is free.
const MOVED: usize = 4;

/// Fibonacci hashing's multiplier (2^64 / φ).
#[cfg(not(phase_lock_model))]
const HASH_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// After a revocation that took `t`, the lock stays unbiased for at least
/// this many times `t` (BRAVO's N).
const INHIBIT_FACTOR: u32 = 9;

/// A revocation less than this many times its own duration after the bias
/// was set is *early* (see `inhibit`).
const EARLY_FACTOR: u64 = 64;

/// At most this many doublings of the inhibition.
const MAX_LEVEL: u32 = 10;

slot_table!(table, SLOTS);

/// How a shared (read or intent) acquisition holds its lock: counted in the
/// lock's state word, or published in a slot of the process-wide bias table.
///
/// This is the per-acquisition guard state of [`RawPatientLock`](crate::RawPatientLock)'s shared
/// and intent modes (lock_api's `SharedGuard`, and this crate's
/// `IntentGuard`). Guards carry it and give it back on release; you only see
/// it when you use the raw lock directly, where it must be passed back to the
/// matching unlock. It is `Send` and `Sync`: a published hold may be released
/// from any thread, since its slot index travels with it.
///
/// ```
/// use phase_lock::{RawPhaseLock, RawIntent};
/// use lock_api::RawRwLock;
///
/// let raw = RawPhaseLock::new();
/// let hold = raw.lock_shared();
/// // A lock used by one thread alone is never biased: the hold is counted.
/// assert!(!hold.is_published());
/// // SAFETY: `hold` is the read acquisition taken above.
/// unsafe { raw.unlock_shared(hold) };
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct SharedHold {
    /// The slot index, or `COUNTED_SLOT`.
    slot: u32,
}

/// `SharedHold::slot` of a counted hold.
const COUNTED_SLOT: u32 = u32::MAX;

impl SharedHold {
    /// A hold counted in the state word.
    pub(crate) const COUNTED: SharedHold = SharedHold { slot: COUNTED_SLOT };

    /// Whether this hold is published in the bias table (the lock was biased
    /// toward its kind when it was taken) rather than counted in the lock.
    #[inline]
    pub fn is_published(&self) -> bool {
        self.slot != COUNTED_SLOT
    }
}

/// The tag a holder of `kind` publishes for the lock at `lock`.
#[inline]
fn tag(lock: usize, kind: Kind) -> usize {
    debug_assert!(kind != Kind::Write && lock.is_multiple_of(8));
    lock | kind as usize
}

/// The slot this thread uses for the lock at `lock`.
#[inline]
fn slot_index(lock: usize) -> usize {
    #[cfg(not(phase_lock_model))]
    {
        // Multiplicative hashing of the two words; the top bits depend on
        // every input bit.
        let h = ((thread_token() as u64).rotate_left(29) ^ lock as u64).wrapping_mul(HASH_MULTIPLIER);
        (h >> (u64::BITS - SLOTS.trailing_zeros())) as usize
    }
    #[cfg(phase_lock_model)]
    {
        let _ = lock;
        thread_token() % SLOTS
    }
}

/// What a publication attempt came to.
pub(crate) enum Published {
    /// The caller holds the lock through the table.
    Entered(SharedHold),
    /// A revoker moved the caller into the count while it looked: it holds
    /// the lock, counted.
    Moved,
    /// No bias (any more), or the slot is taken: try the counted paths.
    No,
}

/// Tries to enter the lock at `lock`, whose state word is `state`, in
/// `kind` through the table.
#[inline]
fn publish(state: &AtomicU64, lock: usize, kind: Kind) -> Published {
    let index = slot_index(lock);
    let slot = &table().0[index];
    let tag = tag(lock, kind);
    // SeqCst: the write half of the handshake (module docs). A taken slot
    // (another lock, or another thread of this one) means: count instead.
    if slot.compare_exchange(0, tag, Ordering::SeqCst, Ordering::Relaxed).is_err() {
        return Published::No;
    }
    dekker_fence();
    // SeqCst: the read half of the handshake, and the acquire of the lock.
    let s = state.load(Ordering::SeqCst);
    if s & BIASED != 0 && holding_kind(s) == Some(kind) {
        return Published::Entered(SharedHold { slot: index as u32 });
    }
    // The bias is gone. Withdraw, unless a revoker saw us and counted us.
    // Acquire on failure: the revoker's count, which we now hold, was made
    // after it took the state word from the previous holders.
    match slot.compare_exchange(tag, 0, Ordering::Relaxed, Ordering::Acquire) {
        Ok(_) => Published::No,
        Err(_) => {
            clear_moved(lock, kind, index as u32);
            Published::Moved
        }
    }
}

/// Releases a published hold of `kind` on the lock at `lock`. Returns
/// `false` if a revoker moved it into the count: then the slot is left
/// marked, and the caller must clear it (`clear_moved`) and release the
/// hold as a counted one.
#[inline]
fn withdraw(lock: usize, kind: Kind, hold: &SharedHold) -> bool {
    let slot = &table().0[hold.slot as usize];
    // Release: a revoker that reads the cleared slot (acquire) sees this
    // critical section's writes before it hands the lock on.
    slot.compare_exchange(tag(lock, kind), 0, Ordering::Release, Ordering::Relaxed).is_ok()
}

/// Clears the slot of a hold that a revoker moved into the count.
fn clear_moved(lock: usize, kind: Kind, slot: u32) {
    let slot = &table().0[slot as usize];
    debug_assert_eq!(
        slot.load(Ordering::Relaxed),
        tag(lock, kind) | MOVED,
        "phase-lock: a published hold's slot was overwritten"
    );
    // Only the holder clears a moved slot; nobody else writes it meanwhile.
    slot.store(0, Ordering::Relaxed);
}

/// Whether a holder of `kind` is published for the lock at `lock` (a
/// snapshot, for `is_locked`).
fn any_published(lock: usize, kind: Kind) -> bool {
    let tag = tag(lock, kind);
    table().0.iter().any(|slot| slot.load(Ordering::Relaxed) == tag)
}

/// Clears every slot still tagged for the lock at `lock` (which is being
/// dropped, so the tags are leaked guards').
pub(crate) fn forget(lock: usize) {
    for slot in &table().0 {
        let v = slot.load(Ordering::Relaxed);
        if v & !(MOVED | 3) == lock {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

/// One inhibition cell: the bias history of the locks hashing to it. Not
/// part of the handshake: a stale or colliding cell only delays or hastens a
/// bias, so these are plain heuristics on relaxed atomics (outside the model
/// checkers only; their models choose when to bias, and time plays no part).
#[cfg(not(phase_lock_model))]
struct Inhibition {
    /// No bias before this time (nanoseconds since `epoch()`).
    until: core::sync::atomic::AtomicU64,
    /// When the last bias was set.
    since: core::sync::atomic::AtomicU64,
    /// How many revocations in a row came early (see `inhibit`).
    level: core::sync::atomic::AtomicU32,
}

/// The inhibition cell of the lock at `lock` (64 cells).
#[cfg(not(phase_lock_model))]
fn inhibition(lock: usize) -> &'static Inhibition {
    use core::sync::atomic::{AtomicU32, AtomicU64};
    static CELLS: [Inhibition; 64] =
        [const { Inhibition { until: AtomicU64::new(0), since: AtomicU64::new(0), level: AtomicU32::new(0) } }; 64];
    &CELLS[((lock as u64).wrapping_mul(HASH_MULTIPLIER) >> (u64::BITS - 6)) as usize]
}

/// A fixed instant, for nanosecond timestamps in the inhibition cells.
#[cfg(not(phase_lock_model))]
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since `epoch()`.
#[cfg(not(phase_lock_model))]
fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Whether the lock at `lock` may not be biased now.
#[inline]
fn inhibited(lock: usize) -> bool {
    #[cfg(not(phase_lock_model))]
    return now_ns() < inhibition(lock).until.load(Ordering::Relaxed);
    #[cfg(phase_lock_model)]
    {
        let _ = lock;
        false
    }
}

/// Records that the lock at `lock` was just biased.
#[inline]
fn biased_now(lock: usize) {
    #[cfg(not(phase_lock_model))]
    inhibition(lock).since.store(now_ns(), Ordering::Relaxed);
    #[cfg(phase_lock_model)]
    let _ = lock;
}

/// Records that a revocation of the lock at `lock` took `took`, and keeps
/// the lock unbiased for a while:
///
/// * `INHIBIT_FACTOR` × `took` at least (BRAVO's rule: at most one part in
///   `INHIBIT_FACTOR + 1` of the time goes to revoking);
/// * doubled for every revocation in a row that came *early* — less than
///   `EARLY_FACTOR` × `took` after the bias was set — up to 2^`MAX_LEVEL`
///   times. A bias revoked that soon bought nothing: its kind barely got to
///   use it before another kind came. Kinds that alternate quickly therefore
///   stop paying for biases geometrically fast, and a bias that lives long
///   resets the level.
fn inhibit(lock: usize, took: Duration) {
    #[cfg(not(phase_lock_model))]
    {
        let cell = inhibition(lock);
        let now = now_ns();
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        let lived = now.saturating_sub(cell.since.load(Ordering::Relaxed));
        let level = if lived < took.saturating_mul(EARLY_FACTOR) {
            (cell.level.load(Ordering::Relaxed) + 1).min(MAX_LEVEL)
        } else {
            0
        };
        cell.level.store(level, Ordering::Relaxed);
        let until = now.saturating_add(took.saturating_mul(u64::from(INHIBIT_FACTOR)) << level);
        cell.until.fetch_max(until, Ordering::Relaxed);
    }
    #[cfg(phase_lock_model)]
    let _ = (lock, took, INHIBIT_FACTOR, EARLY_FACTOR, MAX_LEVEL);
}

/// The fast path failed on the lock at `lock` (state word `state`), which
/// looked biased: enter through the table if the bias is toward `kind`.
/// `None`: the bias is toward another kind, which the caller must revoke.
#[inline]
pub(crate) fn enter(state: &AtomicU64, lock: usize, kind: Kind, s: u64) -> Option<Published> {
    if holding_kind(s) != Some(kind) || kind == Kind::Write {
        return None;
    }
    Some(publish(state, lock, kind))
}

/// Releases a published hold of `kind` of the lock at `lock` through its
/// slot. `false`: a revoker moved it into the count (its slot is cleared
/// now), so the caller releases it counted.
#[inline]
pub(crate) fn release(lock: usize, kind: Kind, hold: &SharedHold) -> bool {
    debug_assert!(hold.is_published());
    if withdraw(lock, kind, hold) {
        return true;
    }
    clear_moved(lock, kind, hold.slot);
    false
}

/// Called after a counted entry of `kind` that lost a race on the state
/// word while another holder of `kind` was present: biases the lock at
/// `lock` toward `kind` if it is free of waiters and not inhibited.
#[cold]
pub(crate) fn maybe_bias(state: &AtomicU64, lock: usize, kind: Kind) {
    let s = state.load(Ordering::Relaxed);
    let quiet = s & (WAITING_MASK | QUEUE_LOCKED | BIASED | REVOKING | STRICT | NO_HANDOFF_OWED) == 0;
    if quiet && holding_kind(s) == Some(kind) && holders(s, kind) + 1 < kind.max_holders() && !inhibited(lock) {
        // Relaxed: a publisher acquires through its own load of the state
        // word, which reads this RMW or a later one (all in the release
        // sequence of the previous phase's last release). The bias hold
        // is one more holder of `kind`. Losing the race means something
        // changed: then no bias this time.
        if state.compare_exchange(s, (s + kind.one()) | BIASED, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            biased_now(lock);
        }
    }
}

/// Ends the bias of the lock at `lock`, if it is biased: moves every
/// published holder into the count and drops the bias hold. Never waits for
/// a holder. Returns the bias's kind and the state word before the bias
/// hold was dropped, so that the caller can hand the lock off as after any
/// release; `None` if the lock was not biased or somebody else revokes.
#[cold]
pub(crate) fn revoke(state: &AtomicU64, lock: usize) -> Option<(Kind, u64)> {
    let start = Instant::now();
    let mut s = state.load(Ordering::Relaxed);
    let kind = loop {
        if s & BIASED == 0 {
            // Not biased, or somebody else is revoking.
            return None;
        }
        let kind = holding_kind(s).expect("phase-lock: a biased lock without its bias hold");
        // SeqCst: the write half of the handshake (module docs).
        match state.compare_exchange_weak(s, (s & !BIASED) | REVOKING, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break kind,
            Err(now) => s = now,
        }
    };
    dekker_fence();
    let tag = tag(lock, kind);
    for slot in &table().0 {
        // SeqCst: the read half of the handshake; also an acquire of a
        // cleared slot's last holder (module docs).
        if slot.load(Ordering::SeqCst) != tag {
            continue;
        }
        // Count the holder first, so that its counted release (once its
        // slot says moved) finds it in the count. Relaxed: the bias hold
        // keeps the count above zero, so this changes no phase.
        state.fetch_add(kind.one(), Ordering::Relaxed);
        // Acquire on failure: the holder left meanwhile (its release
        // cleared the slot): see its writes, and take the count back.
        if slot.compare_exchange(tag, tag | MOVED, Ordering::Relaxed, Ordering::Acquire).is_err() {
            state.fetch_sub(kind.one(), Ordering::Relaxed);
        }
    }
    inhibit(lock, start.elapsed());
    // Drop the bias hold like a holder leaving (Release: the next phase
    // sees what the holders that left through their slots wrote, acquired
    // above).
    let prev = state.fetch_sub(kind.one() | REVOKING, Ordering::Release);
    debug_assert!(prev & REVOKING != 0 && holders(prev, kind) != 0);
    Some((kind, prev))
}

/// `is_locked` for the lock at `lock`, biased in state `s`: a holder besides
/// the bias hold, or a published one.
pub(crate) fn is_locked(s: u64, lock: usize) -> bool {
    match holding_kind(s) {
        Some(kind) if kind != Kind::Write => holders(s, kind) > 1 || any_published(lock, kind),
        _ => s & HOLDERS_MASK != 0,
    }
}

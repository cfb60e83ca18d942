//! [`MemoryBudget`]: a byte budget shared by everything a process holds in flight (pages in
//! the fetcher's channels, decoded batches), so concurrent runs together stay under one bound.
//!
//! It is a `tokio::sync::Semaphore` of KiB units: async code awaits [`MemoryBudget::acquire`],
//! blocking threads (decode, encode) call [`MemoryBudget::acquire_blocking`], and the
//! [`BudgetPermit`] gives its bytes back when dropped. The semaphore is fair (first come, first
//! served), so a large acquisition is not starved by small ones. An acquisition larger than
//! the whole budget takes the whole budget (waiting until everything else is released) instead
//! of waiting forever: one oversized page slows the process down but never deadlocks it.
//!
//! Invariants: the semaphore is never closed; sizes are rounded up to whole KiB, and a budget
//! is at least 1 KiB.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A byte budget; clones share it.
#[derive(Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    /// The whole budget, in units.
    units: u32,
    /// The most units held at once so far (for metrics and tests).
    peak_units: Arc<AtomicU32>,
}

/// Bytes taken from a [`MemoryBudget`], given back on drop.
pub struct BudgetPermit {
    _permit: OwnedSemaphorePermit,
    units: u32,
}

/// The granularity of the budget: acquisitions are rounded up to it.
const UNIT_BYTES: u64 = 1024;

impl MemoryBudget {
    /// A budget of `bytes` (rounded up to whole KiB, at least 1 KiB, at most 4 TiB).
    pub fn new(bytes: u64) -> Self {
        let most = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
        let units = units_of(bytes).clamp(1, most);
        Self {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
            peak_units: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The most bytes held at once since the budget was made.
    pub fn peak_bytes(&self) -> u64 {
        u64::from(self.peak_units.load(Ordering::Relaxed)) * UNIT_BYTES
    }

    fn note_in_use(&self) {
        let available = u32::try_from(self.semaphore.available_permits()).unwrap_or(u32::MAX);
        let in_use = self.units.saturating_sub(available);
        self.peak_units.fetch_max(in_use, Ordering::Relaxed);
    }

    /// The whole budget in bytes.
    pub fn total_bytes(&self) -> u64 {
        u64::from(self.units) * UNIT_BYTES
    }

    /// Bytes not held by any permit right now.
    pub fn available_bytes(&self) -> u64 {
        self.semaphore.available_permits() as u64 * UNIT_BYTES
    }

    /// Waits until `bytes` (or the whole budget, if that is less) are free and takes them.
    pub async fn acquire(&self, bytes: u64) -> BudgetPermit {
        let units = self.clamp(bytes);
        let permit = self
            .semaphore
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed");
        self.note_in_use();
        BudgetPermit {
            _permit: permit,
            units,
        }
    }

    /// [`MemoryBudget::acquire`] for a blocking thread: parks the thread until the bytes are
    /// free. Works on any thread that is not running async tasks (a `spawn_blocking` thread, a
    /// plain thread); it needs no runtime, since the semaphore wakes the parked thread itself.
    pub fn acquire_blocking(&self, bytes: u64) -> BudgetPermit {
        block_on(self.acquire(bytes))
    }

    /// Takes `bytes` (or the whole budget) if they are free now.
    pub fn try_acquire(&self, bytes: u64) -> Option<BudgetPermit> {
        let units = self.clamp(bytes);
        let permit = self.semaphore.clone().try_acquire_many_owned(units).ok()?;
        self.note_in_use();
        Some(BudgetPermit {
            _permit: permit,
            units,
        })
    }

    fn clamp(&self, bytes: u64) -> u32 {
        units_of(bytes).min(self.units)
    }
}

impl BudgetPermit {
    /// The bytes this permit holds (a multiple of 1 KiB).
    pub fn bytes(&self) -> u64 {
        u64::from(self.units) * UNIT_BYTES
    }
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("total_bytes", &self.total_bytes())
            .field("available_bytes", &self.available_bytes())
            .finish()
    }
}

impl std::fmt::Debug for BudgetPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetPermit")
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// Whole units for `bytes`, rounded up, saturating at `u32::MAX` units.
fn units_of(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT_BYTES)).unwrap_or(u32::MAX)
}

/// Wakes a parked thread.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread, parking between polls. A spurious unpark only costs a poll.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests;

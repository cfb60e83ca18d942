//! CPU time of the calling thread, for the per-stage CPU figures of a run: read from Linux's
//! `/proc/thread-self/schedstat` (nanoseconds on a CPU; `tributary_write::thread_cpu`, which the
//! parallel encoder's threads use too), so no unsafe code and no extra crate.
//!
//! Invariant: a platform or kernel without the file gives `None`, never a made-up figure; a
//! stage reads it once when it starts and once when it ends, never per page.

use std::time::Duration;

/// The CPU time the calling thread has used so far, or `None` where the kernel does not say.
pub(crate) fn thread_cpu() -> Option<Duration> {
    tributary_write::thread_cpu()
}

/// The CPU time the calling thread used while running `stage`.
pub(crate) fn measured<T>(stage: impl FnOnce() -> T) -> (T, Option<Duration>) {
    let before = thread_cpu();
    let out = stage();
    let used = match (before, thread_cpu()) {
        (Some(before), Some(after)) => after.checked_sub(before),
        _ => None,
    };
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_busy_stage_uses_cpu_time_and_a_sleeping_one_hardly_any() {
        let (_, busy) = measured(|| {
            (0..20_000_000u64).fold(0u64, |acc, n| {
                std::hint::black_box(acc ^ n.wrapping_mul(31))
            })
        });
        let (_, idle) = measured(|| std::thread::sleep(Duration::from_millis(50)));
        let (busy, idle) = (busy.unwrap(), idle.unwrap());
        assert!(busy > Duration::from_millis(1), "{busy:?}");
        assert!(idle < Duration::from_millis(25), "{idle:?}");
    }
}

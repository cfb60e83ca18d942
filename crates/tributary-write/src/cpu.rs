//! CPU time of threads, for the per-stage CPU figures of a run: read from Linux's
//! `/proc/thread-self/schedstat` (nanoseconds on a CPU), so no unsafe code and no extra crate.
//! The parallel encoder's threads and the engine's stages and decode workers measure themselves
//! with it.
//!
//! Invariant: a platform or kernel without the file gives `None`, never a made-up figure, and a
//! sum with an unknown part is unknown; a stage reads it once when it starts and once when it
//! ends, never per record.

use std::time::Duration;

/// The CPU time the calling thread has used so far, or `None` where the kernel does not say.
pub fn thread_cpu() -> Option<Duration> {
    // The kernel adds a running thread's latest stretch on the CPU to the figure only at a
    // scheduler tick or switch; a yield is a switch, so short stages (an encode thread's share
    // of one row group) are not read as zero.
    std::thread::yield_now();
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The CPU time the calling thread used while running `stage`.
pub fn measured<T>(stage: impl FnOnce() -> T) -> (T, Option<Duration>) {
    let before = thread_cpu();
    let out = stage();
    let used = match (before, thread_cpu()) {
        (Some(before), Some(after)) => after.checked_sub(before),
        _ => None,
    };
    (out, used)
}

/// `a + b`, unknown when either is.
pub fn sum(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    Some(a? + b?)
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

    #[test]
    fn a_sum_with_an_unknown_part_is_unknown() {
        let ms = Duration::from_millis;
        assert_eq!(sum(Some(ms(2)), Some(ms(3))), Some(ms(5)));
        assert_eq!(sum(Some(ms(2)), None), None);
        assert_eq!(sum(None, Some(ms(3))), None);
    }
}

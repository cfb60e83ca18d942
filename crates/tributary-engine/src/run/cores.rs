//! How a run spreads its CPU work over the cores the process may use.
//!
//! A run always has three busy parties: the fetcher's async threads (HTTP and record location),
//! the decode stage and the encode stage. On two cores one decode worker is added, so that the
//! decode stage (the longest, measured with `tributary bench`) can use the time the encoder
//! leaves; beyond two cores every further core gets a decode worker and an encode thread (the
//! two pools rarely peak at once: the stages are pipelined).

use std::num::NonZeroUsize;

/// The threads of one run for a number of cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreShare {
    /// Threads decoding pages ahead of the decode stage.
    pub decode_workers: usize,
    /// Threads encoding the columns of each batch (1: the encode stage alone).
    pub encode_threads: NonZeroUsize,
}

impl CoreShare {
    pub fn of(cores: usize) -> Self {
        let (decode_workers, encode_threads) = match cores {
            0 | 1 => (0, 1),
            2 => (1, 1),
            n => (n - 2, n - 2),
        };
        CoreShare {
            decode_workers,
            encode_threads: NonZeroUsize::new(encode_threads).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_added_for_the_cores_beyond_the_stages() {
        let share = |cores| {
            let share = CoreShare::of(cores);
            (share.decode_workers, share.encode_threads.get())
        };
        assert_eq!(share(1), (0, 1));
        assert_eq!(share(2), (1, 1));
        assert_eq!(share(3), (1, 1));
        assert_eq!(share(4), (2, 2));
        assert_eq!(share(16), (14, 14));
    }
}

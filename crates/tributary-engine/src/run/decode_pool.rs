//! Decode workers: the fast path of pages run ahead on a pool of threads, handed back in page
//! order to the decode stage.
//!
//! The decode stage stays the one owner of the run's `RecordDecoder` (schema, inference, rescue,
//! warnings). [`Lookahead`] sits between the fetcher's channel and that stage: it takes the
//! pages that have already arrived, up to a small depth, and gives each one to a worker together
//! with the decoder's current [`PageDecoderSpec`]; the stage then takes the pages back in the
//! order they came, with the worker's [`PreDecoded`] result, and gives both to
//! `RecordDecoder::decode_predecoded`. A result made for a schema that has changed since (a page
//! before it grew the schema) or one that failed the fast path is decoded again by the stage, so
//! batches, warnings and errors are exactly those of decoding every page in order on one thread.
//!
//! Invariants: pages leave [`Lookahead::next`] in the order the fetcher sent them, and the end
//! marker or error after the last of them; at most `depth` pages are held ahead (each keeps its
//! share of the page budget until it is decoded), so memory stays bounded; with no workers it is
//! the plain channel. A worker that panics fails the run (its reply channel closes), it never
//! silently drops a page.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tributary_fetch::{FetchEnd, FetchError, FetchEvent, Page};
use tributary_transform::decode::{PageDecoder, PageDecoderSpec, PreDecoded};
use tributary_write::cpu;

/// A page and what a worker made of it.
pub(crate) enum Ahead {
    /// A page; `predecoded` is `None` when no worker took it (the first schema was still being
    /// inferred, or there are no workers).
    Page {
        page: Page,
        predecoded: Option<PreDecoded>,
    },
    End(FetchEnd),
    Failed(FetchError),
    /// The fetcher's channel closed without an end marker (its task died).
    Closed,
}

/// One page for a worker.
struct Job {
    spec: PageDecoderSpec,
    records: Bytes,
    reply: SyncSender<(PreDecoded, Duration)>,
}

/// What is waiting to be taken, in order.
enum Queued {
    Page {
        page: Page,
        reply: Option<Receiver<(PreDecoded, Duration)>>,
    },
    End(FetchEnd),
    Failed(FetchError),
    Closed,
}

/// The pool of decode workers of one run and the pages it holds ahead.
pub(crate) struct Lookahead<'a> {
    pages: &'a mut mpsc::Receiver<Result<FetchEvent, FetchError>>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<Option<Duration>>>,
    queue: VecDeque<Queued>,
    depth: usize,
    /// The fetcher's channel gave its last item.
    drained: bool,
    /// Time the workers spent decoding pages whose results were taken.
    pub worker_decode: Duration,
}

impl<'a> Lookahead<'a> {
    /// Starts `workers` decode threads (none: pages pass through undecoded).
    pub fn new(
        pages: &'a mut mpsc::Receiver<Result<FetchEvent, FetchError>>,
        workers: usize,
    ) -> std::io::Result<Self> {
        let mut lookahead = Self {
            pages,
            jobs: None,
            workers: Vec::new(),
            queue: VecDeque::new(),
            depth: 1,
            drained: false,
            worker_decode: Duration::ZERO,
        };
        if workers == 0 {
            return Ok(lookahead);
        }
        // Two pages per worker keep each busy while the stage takes the results in order.
        let (jobs, queue) = sync_channel::<Job>(workers * 2);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = queue.clone();
            let worker = std::thread::Builder::new()
                .name(format!("tributary-decode-{n}"))
                .spawn(move || cpu::measured(|| work(&queue)).1)?;
            lookahead.workers.push(worker);
        }
        lookahead.jobs = Some(jobs);
        lookahead.depth = workers * 2 + 1;
        Ok(lookahead)
    }

    /// The next item of the fetch, in order. `spec` is the decoder's spec now (`None` while it
    /// infers); it is given to the pages that arrived meanwhile. `fetch_wait` grows by the time
    /// spent waiting for the fetcher.
    pub fn next(
        &mut self,
        spec: Option<&PageDecoderSpec>,
        fetch_wait: &mut Duration,
    ) -> Result<Ahead, String> {
        if self.queue.is_empty() {
            let waited = Instant::now();
            let item = self.pages.blocking_recv();
            *fetch_wait += waited.elapsed();
            self.enqueue(item, spec);
        }
        // Take what has already arrived, so the workers decode ahead while the stage works.
        while !self.drained && self.queue.len() < self.depth {
            match self.pages.try_recv() {
                Ok(item) => self.enqueue(Some(item), spec),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.enqueue(None, spec),
            }
        }
        let Some(front) = self.queue.pop_front() else {
            return Ok(Ahead::Closed);
        };
        Ok(match front {
            Queued::Page { page, reply: None } => Ahead::Page {
                page,
                predecoded: None,
            },
            Queued::Page {
                page,
                reply: Some(reply),
            } => {
                let (predecoded, took) = reply.recv().map_err(|_| {
                    "internal error: a decode worker stopped (panicked) before it answered"
                        .to_owned()
                })?;
                self.worker_decode += took;
                Ahead::Page {
                    page,
                    predecoded: Some(predecoded),
                }
            }
            Queued::End(end) => Ahead::End(end),
            Queued::Failed(err) => Ahead::Failed(err),
            Queued::Closed => Ahead::Closed,
        })
    }

    fn enqueue(
        &mut self,
        item: Option<Result<FetchEvent, FetchError>>,
        spec: Option<&PageDecoderSpec>,
    ) {
        let queued = match item {
            Some(Ok(FetchEvent::Page(page))) => {
                let reply = match (&self.jobs, spec) {
                    (Some(jobs), Some(spec)) => {
                        let (reply, answer) = sync_channel(1);
                        let job = Job {
                            spec: spec.clone(),
                            records: page.records.clone(),
                            reply,
                        };
                        // A pool whose workers are all gone leaves the page to the stage.
                        jobs.send(job).ok().map(|()| answer)
                    }
                    _ => None,
                };
                Queued::Page { page, reply }
            }
            Some(Ok(FetchEvent::End(end))) => Queued::End(end),
            Some(Err(err)) => Queued::Failed(err),
            None => Queued::Closed,
        };
        self.drained |= !matches!(queued, Queued::Page { .. });
        self.queue.push_back(queued);
    }

    /// Stops the workers and returns the CPU time they used (`None` where the platform does not
    /// say, or a worker panicked).
    pub fn finish(mut self) -> Option<Duration> {
        self.queue.clear();
        self.jobs = None;
        let mut total = Some(Duration::ZERO);
        for worker in std::mem::take(&mut self.workers) {
            let used = worker.join().ok().flatten();
            total = cpu::sum(total, used);
        }
        total
    }
}

impl Drop for Lookahead<'_> {
    fn drop(&mut self) {
        // Closing the job channel ends the workers once they finish the page in hand.
        self.queue.clear();
        self.jobs = None;
    }
}

/// A worker's loop: decode pages until the job channel closes.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut decoder = PageDecoder::new();
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let started = Instant::now();
        let predecoded = decoder.predecode(&job.spec, &job.records);
        // The stage may have stopped waiting (the run ended): nothing to do with the result.
        let _ = job.reply.send((predecoded, started.elapsed()));
    }
}

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
//!
//! Memory: a page held ahead keeps its share of the page budget, and while a worker's result
//! for it exists (decoded columns, about the size of the page's JSON) the page holds a second
//! share of the same size. That second share is only taken if it is free now
//! ([`MemoryBudget::try_acquire`]); when it is not, no worker gets the page and the stage decodes
//! it itself. So workers never make a run hold more than the budget, and they never wait on it
//! (waiting there, with pages held, could deadlock against the fetcher).

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tributary_fetch::{BudgetPermit, FetchEnd, FetchError, FetchEvent, MemoryBudget, Page};
use tributary_transform::decode::{PageDecoder, PageDecoderSpec, PreDecoded};
use tributary_write::cpu;

/// A page and what a worker made of it.
pub(crate) enum Ahead {
    /// A page; `predecoded` is `None` when no worker took it (the first schema was still being
    /// inferred, or there are no workers).
    Page {
        page: Page,
        predecoded: Option<PreDecoded>,
        /// The budget share of `predecoded`, to hold until its batches are handed on.
        held: Option<BudgetPermit>,
    },
    End(FetchEnd),
    Failed(FetchError),
    /// The fetcher's channel closed without an end marker (its task died).
    Closed,
}

/// What a worker runs on a page: [`PageDecoder::predecode`] (tests put a failing one here).
pub(crate) type DecodeFn = fn(&mut PageDecoder, &PageDecoderSpec, &[u8]) -> PreDecoded;

/// One page for a worker.
struct Job {
    spec: PageDecoderSpec,
    records: Bytes,
    reply: SyncSender<(PreDecoded, Duration)>,
}

/// A worker's answer to come: its result and the time it took.
type Answer = Receiver<(PreDecoded, Duration)>;

/// What is waiting to be taken, in order.
enum Queued {
    Page {
        page: Page,
        /// The worker's answer to come and the budget share it holds.
        reply: Option<(Answer, Option<BudgetPermit>)>,
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
    /// The page budget the workers' results are counted against.
    budget: Option<MemoryBudget>,
    /// The fetcher's channel gave its last item.
    drained: bool,
    /// Time the workers spent decoding pages whose results were taken.
    pub worker_decode: Duration,
}

impl<'a> Lookahead<'a> {
    /// Starts `workers` decode threads (none: pages pass through undecoded). Their results are
    /// counted against `budget` (the fetch context's page budget) when there is one.
    pub fn new(
        pages: &'a mut mpsc::Receiver<Result<FetchEvent, FetchError>>,
        workers: usize,
        budget: Option<MemoryBudget>,
    ) -> std::io::Result<Self> {
        Self::with_decode(pages, workers, budget, PageDecoder::predecode)
    }

    /// [`Lookahead::new`] with the workers running `decode`.
    pub(crate) fn with_decode(
        pages: &'a mut mpsc::Receiver<Result<FetchEvent, FetchError>>,
        workers: usize,
        budget: Option<MemoryBudget>,
        decode: DecodeFn,
    ) -> std::io::Result<Self> {
        let mut lookahead = Self {
            pages,
            jobs: None,
            workers: Vec::new(),
            queue: VecDeque::new(),
            depth: 1,
            budget,
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
                .spawn(move || cpu::measured(|| work(&queue, decode)).1)?;
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
                held: None,
            },
            Queued::Page {
                page,
                reply: Some((reply, held)),
            } => {
                let (predecoded, took) = reply.recv().map_err(|_| {
                    "internal error: a decode worker stopped (panicked) before it answered"
                        .to_owned()
                })?;
                self.worker_decode += took;
                Ahead::Page {
                    page,
                    predecoded: Some(predecoded),
                    held,
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
                        // No room for the result now: the stage decodes this page itself.
                        let held = match &self.budget {
                            Some(budget) => budget.try_acquire(page.records.len() as u64),
                            None => None,
                        };
                        if self.budget.is_some() && held.is_none() {
                            None
                        } else {
                            let (reply, answer) = sync_channel(1);
                            let job = Job {
                                spec: spec.clone(),
                                records: page.records.clone(),
                                reply,
                            };
                            // A pool whose workers are all gone leaves the page to the stage.
                            jobs.send(job).ok().map(|()| (answer, held))
                        }
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
fn work(queue: &Mutex<Receiver<Job>>, decode: DecodeFn) {
    let mut decoder = PageDecoder::new();
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let started = Instant::now();
        let predecoded = decode(&mut decoder, &job.spec, &job.records);
        // The stage may have stopped waiting (the run ended): nothing to do with the result.
        let _ = job.reply.send((predecoded, started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_fetch::{NextPage, Position};
    use tributary_transform::decode::{DecoderOptions, RecordDecoder};

    /// A page of `rows` records, about `rows * 40` bytes; `marker` goes into its first record.
    fn page(page_idx: u64, rows: usize, marker: &str) -> Page {
        let mut ndjson = String::new();
        for row in 0..rows {
            let note = if row == 0 { marker } else { "" };
            ndjson.push_str(&format!(
                "{{\"id\":{},\"name\":\"member {row:05}\",\"note\":\"{note}\"}}\n",
                page_idx * 1000 + row as u64
            ));
        }
        Page {
            page_idx,
            url: format!("http://127.0.0.1/members?page={page_idx}"),
            status: 200,
            body: None,
            body_len: ndjson.len() as u64,
            record_count: rows,
            records: Bytes::from(ndjson),
            position: Position {
                next: NextPage::Start,
                requests: page_idx as u32 + 1,
                pages: page_idx + 1,
                window: None,
            },
            budget: None,
        }
    }

    /// The spec of a decoder that has seen one page like those of [`page`].
    fn spec() -> PageDecoderSpec {
        let mut decoder = RecordDecoder::new(DecoderOptions::default());
        decoder
            .decode_page(0, &page(0, 10, "").records)
            .expect("a plain page decodes");
        decoder
            .page_decoder_spec()
            .expect("a decoder that has inferred its schema has a spec")
    }

    /// A channel that already holds `pages` and then the end marker.
    fn channel(pages: Vec<Page>) -> mpsc::Receiver<Result<FetchEvent, FetchError>> {
        let (tx, rx) = mpsc::channel(pages.len() + 1);
        for page in pages {
            tx.try_send(Ok(FetchEvent::Page(page))).expect("room");
        }
        tx.try_send(Ok(FetchEvent::End(FetchEnd {
            position: Position {
                next: NextPage::Done,
                requests: 0,
                pages: 0,
                window: None,
            },
            truncated: false,
        })))
        .expect("room");
        rx
    }

    /// Takes every item; per page: (page_idx, whether a worker's result came with it). With a
    /// budget, a result always comes with its budget share.
    fn take_all(
        lookahead: &mut Lookahead<'_>,
        spec: &PageDecoderSpec,
        budgeted: bool,
    ) -> Vec<(u64, bool)> {
        let mut seen = Vec::new();
        let mut waited = Duration::ZERO;
        loop {
            match lookahead
                .next(Some(spec), &mut waited)
                .expect("no worker fails")
            {
                Ahead::Page {
                    page,
                    predecoded,
                    held,
                } => {
                    let expect_held = budgeted && predecoded.is_some();
                    assert_eq!(held.is_some(), expect_held, "page {}", page.page_idx);
                    seen.push((page.page_idx, predecoded.is_some()));
                }
                Ahead::End(_) => return seen,
                Ahead::Failed(err) => panic!("unexpected fetch error {err}"),
                Ahead::Closed => panic!("closed without an end marker"),
            }
        }
    }

    #[test]
    fn a_workers_result_holds_page_budget_and_a_page_without_room_is_left_to_the_stage() {
        let spec = spec();
        let pages: Vec<Page> = (0..8).map(|idx| page(idx, 60, "")).collect();
        let page_bytes = pages[0].records.len() as u64;
        assert!(page_bytes > 2048 && page_bytes < 3072, "{page_bytes} bytes");

        // Room for one result at a time: the page taken gives its share back before the next
        // page's result is asked for, the pages queued meanwhile are left to the stage.
        let budget = MemoryBudget::new(4 * 1024);
        let mut rx = channel(pages.clone());
        let mut lookahead = Lookahead::new(&mut rx, 1, Some(budget.clone())).expect("workers");
        let seen = take_all(&mut lookahead, &spec, true);
        lookahead.finish();
        let order: Vec<u64> = seen.iter().map(|(idx, _)| *idx).collect();
        assert_eq!(order, (0..8).collect::<Vec<_>>(), "pages leave in order");
        let by_workers = seen.iter().filter(|(_, ahead)| *ahead).count();
        assert!(seen[0].1, "the first page had room: {seen:?}");
        assert!(
            (1..8).contains(&by_workers),
            "some pages, not all, had room: {seen:?}"
        );
        assert!(budget.peak_bytes() <= budget.total_bytes());
        assert_eq!(
            budget.available_bytes(),
            budget.total_bytes(),
            "every share given back"
        );

        // Without a budget, every page is decoded ahead.
        let mut rx = channel(pages);
        let mut lookahead = Lookahead::new(&mut rx, 1, None).expect("workers");
        let seen = take_all(&mut lookahead, &spec, false);
        lookahead.finish();
        assert!(seen.iter().all(|(_, ahead)| *ahead), "{seen:?}");
    }

    #[test]
    fn a_worker_that_panics_fails_the_run_at_its_page_and_drops_no_page_before_it() {
        fn panics_on_boom(
            decoder: &mut PageDecoder,
            spec: &PageDecoderSpec,
            bytes: &[u8],
        ) -> PreDecoded {
            if bytes.windows(4).any(|w| w == b"boom") {
                panic!("a decode worker meets a bug");
            }
            decoder.predecode(spec, bytes)
        }
        let spec = spec();
        let pages: Vec<Page> = (0..6)
            .map(|idx| page(idx, 5, if idx == 3 { "boom" } else { "" }))
            .collect();
        let mut rx = channel(pages);
        let mut lookahead =
            Lookahead::with_decode(&mut rx, 1, None, panics_on_boom).expect("workers");
        let mut waited = Duration::ZERO;
        for expected in 0..3 {
            match lookahead.next(Some(&spec), &mut waited) {
                Ok(Ahead::Page { page, .. }) => assert_eq!(page.page_idx, expected),
                Ok(_) => panic!("page {expected} expected"),
                Err(err) => panic!("page {expected} failed: {err}"),
            }
        }
        let err = match lookahead.next(Some(&spec), &mut waited) {
            Err(err) => err,
            Ok(_) => panic!("the page the worker died on must fail the run"),
        };
        assert!(err.contains("decode worker stopped"), "{err}");
        // The pool reports that a worker did not end normally: no CPU figure.
        assert_eq!(lookahead.finish(), None);
    }
}

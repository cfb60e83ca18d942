//! Crash safety of the real binary: `tributary run` over 100,000 records in pages of 100, with a
//! checkpoint every 5,000 rows (`TRIBUTARY_CHECKPOINT_ROWS`), killed with SIGKILL at random
//! moments (seeded) — while fetching and while committing — and restarted until it succeeds;
//! then the same window run again (a re-run, whose commit swaps the batch) and killed the same
//! way. After every kill no reader may see a duplicate, a temp file, a partial file or part of
//! the window (the window is all there or, for the instant of a swap, not there at all); at the
//! end every id is published exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};

use crate::backfill::{
    BIN, MockChild, assert_each_id_once, bundle_json, files_under, published_id_counts, start_mock,
};

const RECORDS: usize = 100_000;

/// What a reader of `datasets/` may see: only `batch=*/part-*.parquet` (and the `_errors`
/// folder), never a staging or in-progress file.
fn assert_only_published_parts(data_dir: &Path) {
    let datasets = data_dir.join("datasets");
    for relative in files_under(&datasets) {
        let name = relative.file_name().unwrap().to_string_lossy().into_owned();
        let text = relative.to_string_lossy();
        assert!(
            !text.contains(".inprogress"),
            "in-progress file visible: {text}"
        );
        let in_batch = relative
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("batch="));
        assert!(
            in_batch && name.starts_with("part-") && name.ends_with(".parquet"),
            "unexpected file under datasets/: {text}"
        );
    }
}

fn run_command(dir: &Path, bundle: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("run")
        .arg(bundle)
        .args(["--window-end", "2025-01-01T00:00:00Z", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env(
            "TRIBUTARY_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("TRIBUTARY_CHECKPOINT_ROWS", "5000")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Runs to completion twice, to learn how long a whole run takes here (the kills are spread
/// over that span). The shorter of the two: the other tests of the binary load the machine
/// unevenly, and a span longer than the runs that follow lets them finish before their kill.
fn full_run_duration(mock: &MockChild) -> Duration {
    (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let bundle = dir.path().join("crash.json");
            std::fs::write(&bundle, bundle_json("crash", &mock.url, "crash", 100, None)).unwrap();
            let started = Instant::now();
            let status = run_command(dir.path(), &bundle).status().unwrap();
            assert!(status.success());
            assert_only_published_parts(&dir.path().join("data"));
            assert_each_id_once(&dir.path().join("data"), "crash", RECORDS);
            started.elapsed()
        })
        .min()
        .expect("two runs")
}

/// What the kills of one seed saw.
#[derive(Debug, Default)]
struct Kills {
    total: u64,
    /// Kills after which the window was not visible at all (before the first commit, or in the
    /// instant between taking the old batch out and renaming the new one in).
    window_absent: u64,
}

/// The rows a reader sees, checked: no temp file, no duplicate, and the window whole or absent.
fn check_visible(data_dir: &Path, context: &str) -> usize {
    assert_only_published_parts(data_dir);
    let counts = published_id_counts(data_dir, "crash");
    assert!(
        counts.values().all(|&n| n == 1),
        "{context}: duplicate ids visible"
    );
    assert!(
        counts.is_empty() || counts.len() == RECORDS,
        "{context}: part of the window is visible ({} of {RECORDS} records)",
        counts.len()
    );
    counts.len()
}

fn crash_and_recover(mock: &MockChild, seed: u64, full_run: Duration) -> Kills {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let bundle = dir.path().join("crash.json");
    std::fs::write(&bundle, bundle_json("crash", &mock.url, "crash", 100, None)).unwrap();
    let max_delay_ms = (full_run.as_millis() as u64).max(200);
    let mut kills = Kills::default();
    // Phase 0 ingests the window; phase 1 runs it again, so its commit swaps the batch.
    for phase in 0..2 {
        kills.total += kill_until_success(
            &bundle,
            dir.path(),
            &mut rng,
            max_delay_ms,
            seed,
            phase,
            &mut kills.window_absent,
        );
        assert_each_id_once(&data_dir, "crash", RECORDS);
    }
    eprintln!(
        "crash test seed {seed}: {} kills ({} with the window absent), then a clean finish; every id once",
        kills.total, kills.window_absent
    );
    kills
}

/// Runs the window, killing the run at random moments up to four times, until a run succeeds.
/// Returns the kills.
fn kill_until_success(
    bundle: &Path,
    dir: &Path,
    rng: &mut rand::rngs::StdRng,
    max_delay_ms: u64,
    seed: u64,
    phase: u32,
    window_absent: &mut u64,
) -> u64 {
    let data_dir = dir.join("data");
    let mut kills: u64 = 0;
    loop {
        let mut child = run_command(dir, bundle).spawn().unwrap();
        // At most four kills per seed, so the test ends; then the run is left to finish.
        // A resumed run has less left to do than a whole one, so each kill is drawn from a
        // shorter span than the one before; every other kill aims at the end of that span,
        // where the batch is published (the commit phase).
        let kill_after = (kills < 4).then(|| {
            let upper = (max_delay_ms * (5 - kills) / 6).max(40);
            let lower = if kills % 2 == 1 { upper * 3 / 4 } else { 20 };
            Duration::from_millis(rng.random_range(lower..upper))
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if kill_after.is_some_and(|after| started.elapsed() >= after) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "seed {seed}: a run took over a minute"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        // Whatever moment it died at, a reader sees no temp file, no duplicate, and the window
        // whole or not at all.
        let context = format!("seed {seed}, phase {phase}, after kill {kills}");
        let visible = check_visible(&data_dir, &context);
        match status {
            None => {
                kills += 1;
                if visible == 0 && phase == 1 {
                    *window_absent += 1;
                }
            }
            Some(status) => {
                assert!(status.success(), "{context}: run exited with {status}");
                break;
            }
        }
    }
    kills
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let mock = start_mock(&[
        "--records",
        &RECORDS.to_string(),
        "--start-time",
        "2024-01-01T00:00:00Z",
    ]);
    let full_run = full_run_duration(&mock);
    eprintln!("crash test: an uninterrupted run of {RECORDS} records takes {full_run:?}");
    let mut total_kills = 0;
    for seed in [1, 2, 3, 4, 5, 6] {
        total_kills += crash_and_recover(&mock, seed, full_run).total;
    }
    // The delays are drawn below the length of what is left to do, so most attempts die.
    assert!(
        total_kills >= 12,
        "only {total_kills} kills over 6 seeds and 2 phases (a full run takes {full_run:?})"
    );
}

/// A run killed after some parts were recorded, whose staging folder is then lost (as when the
/// node that wrote it is another machine): the next run cannot resume from those parts, starts
/// the attempt again, and publishes every record exactly once.
#[test]
fn an_attempt_whose_staged_parts_are_gone_starts_again_and_loses_nothing() {
    // Fewer records than the kill test: six parts are enough, and this test runs beside it.
    const SMALL: usize = 30_000;
    let mock = start_mock(&["--records", &SMALL.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let bundle = dir.path().join("crash.json");
    std::fs::write(&bundle, bundle_json("crash", &mock.url, "crash", 100, None)).unwrap();
    let mut child = run_command(dir.path(), &bundle).spawn().unwrap();
    let staging = data_dir.join("_staging");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Two sealed parts: the first of them is recorded in state (a part is sealed, then
        // recorded).
        let sealed = files_under(&staging)
            .iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "parquet"))
            .count();
        if sealed >= 2 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it staged two parts"
        );
        assert!(Instant::now() < deadline, "no parts staged after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&staging).unwrap();

    let output = run_command(dir.path(), &bundle)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the attempt starts again"),
        "the run says why it did not resume: {stderr}"
    );
    assert_only_published_parts(&data_dir);
    assert_each_id_once(&data_dir, "crash", SMALL);
}

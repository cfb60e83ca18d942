//! Tests of the memory budget: async and blocking acquisition, oversized asks, release on drop.

use std::time::Duration;

use super::*;

const KIB: u64 = 1024;

#[tokio::test]
async fn acquire_waits_for_a_release_and_sizes_round_up_to_kib() {
    let budget = MemoryBudget::new(4 * KIB);
    let held = budget.acquire(3000).await;
    assert_eq!(held.bytes(), 3 * KIB, "3000 bytes hold 3 KiB");
    assert_eq!(budget.available_bytes(), KIB);
    assert!(budget.try_acquire(2 * KIB).is_none());
    let waiter = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.acquire(2 * KIB).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "2 KiB are not free yet");
    drop(held);
    let permit = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the release wakes the waiter")
        .unwrap();
    assert_eq!(budget.available_bytes(), 2 * KIB);
    drop(permit);
    assert_eq!(budget.available_bytes(), budget.total_bytes());
}

#[test]
fn acquire_blocking_parks_a_plain_thread_until_the_bytes_are_free() {
    let budget = MemoryBudget::new(2 * KIB);
    let held = budget.try_acquire(2 * KIB).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let thread = {
        let budget = budget.clone();
        std::thread::spawn(move || {
            let permit = budget.acquire_blocking(KIB);
            done.send(permit.bytes()).unwrap();
        })
    };
    assert!(
        finished.recv_timeout(Duration::from_millis(100)).is_err(),
        "blocked while the budget is spent"
    );
    drop(held);
    assert_eq!(
        finished.recv_timeout(Duration::from_secs(5)).unwrap(),
        KIB,
        "woken by the release, no runtime needed"
    );
    thread.join().unwrap();
    assert_eq!(
        budget.available_bytes(),
        2 * KIB,
        "the thread's permit was released"
    );
}

#[tokio::test]
async fn an_acquisition_larger_than_the_budget_takes_all_of_it_instead_of_deadlocking() {
    let budget = MemoryBudget::new(4 * KIB);
    let whole = budget.acquire(u64::MAX).await;
    assert_eq!(whole.bytes(), 4 * KIB);
    assert_eq!(budget.available_bytes(), 0);
    drop(whole);
    // With something else held, the oversized ask waits for it, then gets everything.
    let small = budget.acquire(1).await;
    let big = {
        let budget = budget.clone();
        tokio::spawn(async move { budget.acquire(64 * 1024 * KIB).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!big.is_finished());
    drop(small);
    let big = tokio::time::timeout(Duration::from_secs(5), big)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(big.bytes(), budget.total_bytes());
    assert_eq!(MemoryBudget::new(0).total_bytes(), KIB, "at least 1 KiB");
    assert_eq!(budget.acquire(0).await.bytes(), 0, "nothing to hold");
}

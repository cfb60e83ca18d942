//! Leases and fencing. Two nodes need two handles on one state, which only Postgres allows (a
//! sled directory is locked by its first opener): those tests check the single-node behaviour
//! on sled and the two-node behaviour when the suite runs on Postgres.

use std::time::Duration;

use serde_json::json;

use crate::tests::{on_postgres, open, part, window};
use crate::{BatchId, DatasetId, Db, FlowId, NodeId, NodeRecord, RunId, StateError};

const TTL: Duration = Duration::from_secs(30);

fn node(db: &Db, id: &str) {
    node_with_ttl(db, id, TTL);
}

fn node_with_ttl(db: &Db, id: &str, ttl: Duration) {
    db.join_cluster(NodeId::try_new(id).unwrap(), ttl).unwrap();
}

fn begin(db: &Db, flow: &str, batch: &str) -> Result<(), StateError> {
    db.begin_window(
        &window(flow, Some(0), Some(10)),
        &RunId::new(format!("run-{batch}")),
        &BatchId::new(batch),
        &DatasetId::new("ds"),
    )
    .map(drop)
}

fn assert_lease_lost(res: Result<(), StateError>, node: &str) {
    match res {
        Err(StateError::LeaseLost { node: named, .. }) => assert_eq!(named, node),
        other => panic!("expected LeaseLost for {node}, got {other:?}"),
    }
}

#[test]
fn a_process_that_is_not_a_node_holds_every_lease_without_storing_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let flow = FlowId::new("f");
    let first = db.claim_lease(&flow).unwrap().unwrap();
    let second = db.claim_lease(&flow).unwrap().unwrap();
    assert_eq!((first.token(), second.token()), (None, None));
    assert!(db.leases().unwrap().is_empty());
    // Nothing is fenced: the commit protocol works without a lease.
    begin(&db, "f", "b1").unwrap();
    first.release().unwrap();
    assert_eq!(db.renew_leases().unwrap().lost, Vec::<FlowId>::new());
}

#[test]
fn a_node_runs_the_commit_protocol_only_while_it_holds_the_flows_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    node(&db, "node-a");
    // No lease yet: refused before anything is written.
    assert_lease_lost(begin(&db, "f", "b1"), "node-a");
    assert!(
        db.checkpoint(&window("f", Some(0), Some(10)))
            .unwrap()
            .is_none()
    );

    let flow = FlowId::new("f");
    let hold = db.claim_lease(&flow).unwrap().unwrap();
    assert_eq!(hold.token(), Some(1));
    begin(&db, "f", "b1").unwrap();
    let win = window("f", Some(0), Some(10));
    db.record_parts(&win, &[part(0, 5)], &json!({"page": 1}), 5)
        .unwrap();
    // A second hold (the run inside the scheduler's job) shares the claim.
    let inner = db.claim_lease(&flow).unwrap().unwrap();
    assert_eq!(inner.token(), Some(1));
    inner.release().unwrap();
    assert_eq!(db.held_leases_snapshot(), vec![(flow.clone(), 1)]);
    assert_eq!(db.renew_leases().unwrap().renewed, 1);
    hold.release().unwrap();
    assert!(db.held_leases_snapshot().is_empty());
    // Released: stored with expiry 0, token kept; the protocol is fenced again.
    let stored = db.leases().unwrap();
    assert_eq!(
        (
            stored[0].token,
            stored[0].expires_at_ms,
            stored[0].holder.as_str()
        ),
        (1, 0, "node-a")
    );
    assert_lease_lost(
        db.record_parts(&win, &[part(1, 5)], &json!({"page": 2}), 10),
        "node-a",
    );
    // Claimed again: the token grows.
    let again = db.claim_lease(&flow).unwrap().unwrap();
    assert_eq!(again.token(), Some(2));
    db.record_parts(&win, &[part(1, 5)], &json!({"page": 2}), 10)
        .unwrap();
}

#[test]
fn a_node_that_lost_its_lease_to_another_cannot_record_or_commit() {
    if !on_postgres() {
        // Two nodes on one state need a shared database; sled's directory lock allows one.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node_a = open(dir.path());
    let node_b = open(dir.path());
    node_with_ttl(&node_a, "node-a", Duration::from_millis(300));
    node(&node_b, "node-b");
    let flow = FlowId::new("f");
    let win = window("f", Some(0), Some(10));

    let held_a = node_a.claim_lease(&flow).unwrap().unwrap();
    begin(&node_a, "f", "b1").unwrap();
    // Live lease of another node: refused, and B cannot touch the window.
    assert!(node_b.claim_lease(&flow).unwrap().is_none());
    assert_lease_lost(begin(&node_b, "f", "b2"), "node-b");

    // A stops renewing (paused); past the TTL B claims the flow with a bigger token.
    std::thread::sleep(Duration::from_millis(400));
    let held_b = node_b.claim_lease(&flow).unwrap().unwrap();
    assert_eq!((held_a.token(), held_b.token()), (Some(1), Some(2)));
    // A wakes up: every step of the protocol is refused, naming who holds the flow now.
    let res = node_a.record_parts(&win, &[part(0, 5)], &json!({"page": 1}), 5);
    match &res {
        Err(StateError::LeaseLost { reason, .. }) => {
            assert!(
                reason.contains("node-b") && reason.contains("token 2"),
                "{reason}"
            )
        }
        other => panic!("expected LeaseLost, got {other:?}"),
    }
    assert_lease_lost(node_a.start_commit(&win, false).map(drop), "node-a");
    // A's renewal finds the lease gone; its hold knows.
    let report = node_a.renew_leases().unwrap();
    assert_eq!((report.renewed, report.lost), (0, vec![flow.clone()]));
    assert!(held_a.is_lost() && !held_b.is_lost());
    // A's release leaves B's lease alone.
    held_a.release().unwrap();
    assert_eq!(node_a.leases().unwrap()[0].holder.as_str(), "node-b");
    // B resumes the window A began and goes on.
    node_b.resume_window(&win, &RunId::new("run-b")).unwrap();
    node_b
        .record_parts(&win, &[part(0, 5)], &json!({"page": 1}), 5)
        .unwrap();
    node_b.start_commit(&win, false).unwrap();
    node_b.complete_window(&win, None).unwrap();
    // B's release lets A claim at once, with the next token.
    held_b.release().unwrap();
    assert_eq!(node_a.claim_lease(&flow).unwrap().unwrap().token(), Some(3));
}

#[test]
fn nodes_are_live_within_their_ttl_of_the_last_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let record = |id: &str, heartbeat_at_ms: i64| NodeRecord {
        node_id: NodeId::try_new(id).unwrap(),
        listen: "127.0.0.1:8080".to_owned(),
        pid: 1,
        started_at_ms: 0,
        heartbeat_at_ms,
        ttl_ms: 1_000,
        leases_held: 0,
        active_origins: vec!["http://api.test:80".to_owned()],
    };
    db.put_node(&record("a", 10_000)).unwrap();
    db.put_node(&record("b", 8_000)).unwrap();
    let live: Vec<String> = db
        .live_nodes(10_500)
        .unwrap()
        .into_iter()
        .map(|n| n.node_id.to_string())
        .collect();
    assert_eq!(live, vec!["a"]);
    assert_eq!(
        db.live_nodes(10_500).unwrap()[0].active_origins,
        vec!["http://api.test:80"]
    );
    assert!(db.remove_node(&NodeId::try_new("a").unwrap()).unwrap());
    assert!(db.live_nodes(10_500).unwrap().is_empty());
    assert!(NodeId::try_new("").is_err());
    assert!(NodeId::try_new("a\nb").is_err());
}

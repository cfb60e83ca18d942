//! The scheduler on a node of a shared state: several daemons on one Postgres share the flows
//! through per-flow leases (`tributary_state`'s `leases`).
//!
//! At each wake (at the latest every `poll_interval`, since other nodes change state without
//! telling us) the scheduler picks the flows that look due — an unfinished window, or a
//! schedule slot that passed — and whose lease no other node holds, earliest slot first, at
//! most as many as it has free run slots, and claims their leases. Only then does it plan a
//! flow's steps, from state read after the claim: what another node did before it let the
//! flow go is seen, so a window is never planned twice. A flow with nothing to do gives its
//! lease back at once; a flow job gives it back when its steps are done.
//!
//! [`keep_alive`] renews the node's leases and writes its heartbeat every third of the TTL; a
//! lease found taken by another node (this node was paused or cut off for longer than the TTL)
//! cancels the flow's run, whose next commit-protocol step would be refused anyway (fencing).
//! A node that dies stops renewing; after the TTL another node claims the flow, finishes a
//! commit the dead node had started ([`finish_interrupted_commits`]) and resumes its window from
//! the last checkpoint.
//!
//! Hosts' rate limits hold across the nodes by each node taking its share (see
//! `tributary_fetch::limit`): the heartbeat row lists the origins the node calls under a rate
//! limit, and every [`SHARE_REFRESH`] the node reads the live nodes' rows and divides each
//! origin's rate by the number of nodes calling it. A node that starts calling an origin writes
//! its row at once instead of at its next heartbeat, so the others adjust within about two
//! refreshes. (The alternative, one limiter state in Postgres, would put a database round trip
//! in front of every request.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};
use tributary_fetch::Limiters;
use tributary_state::{CheckpointStatus, Db, FlowId, LeaseHold, NodeId, NodeRecord};
use tributary_write::DatasetLayout;

use super::{DaemonFlow, Progress, Shutdown};
use crate::schedule::{Due, due};

/// How the scheduler takes part in a shared state.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where the datasets are (to finish a commit a dead node started).
    pub layout: DatasetLayout,
    /// The longest a node may wait for due work that another node made possible.
    pub poll_interval: Duration,
    /// The node's HTTP API address, for its heartbeat row.
    pub listen: String,
    /// The fetcher's limiters (the engine's): their shares follow the other nodes' calls.
    pub limiters: Limiters,
}

/// How often a node re-reads the live nodes' rows for its shares of the hosts' rate limits.
pub const SHARE_REFRESH: Duration = Duration::from_secs(1);

/// A flow the scheduler may start now, with the lease it claimed for it.
pub(crate) struct Claimed {
    pub(crate) flow: DaemonFlow,
    pub(crate) last_end: Option<DateTime<Utc>>,
    pub(crate) lease: LeaseHold,
}

/// The candidates (flows not running here, enabled, with their last window end) that look due
/// and are free, earliest slot first, at most `free_slots`, with their leases claimed; the
/// earliest future slot of the others goes to `wake_at`. Blocking.
pub(crate) fn claim_due(
    db: &Db,
    layout: &DatasetLayout,
    candidates: Vec<(DaemonFlow, Option<DateTime<Utc>>)>,
    now: DateTime<Utc>,
    max_catch_up: u32,
    free_slots: usize,
    wake_at: &mut dyn FnMut(DateTime<Utc>),
) -> Result<Vec<Claimed>, tributary_state::StateError> {
    if free_slots == 0 || candidates.is_empty() {
        return Ok(Vec::new());
    }
    let node = db.node_id().cloned();
    let now_ms = now.timestamp_millis();
    let unfinished: HashSet<FlowId> = db
        .all_open_windows()?
        .into_iter()
        .map(|open| open.window.flow_id)
        .collect();
    let taken: HashSet<FlowId> = db
        .leases()?
        .into_iter()
        .filter(|lease| Some(&lease.holder) != node.as_ref() && lease.expires_at_ms > now_ms)
        .map(|lease| lease.flow_id)
        .collect();
    let mut due_flows: Vec<(DateTime<Utc>, DaemonFlow, Option<DateTime<Utc>>)> = Vec::new();
    for (flow, last_end) in candidates {
        if taken.contains(&flow.flow_id) {
            continue;
        }
        let Some(schedule) = &flow.bundle.schedule else {
            continue;
        };
        let due_at = if unfinished.contains(&flow.flow_id) {
            // An interrupted window (maybe of a node that died) goes first.
            DateTime::<Utc>::MIN_UTC
        } else {
            match due(schedule, &flow.slots, last_end, now, max_catch_up) {
                Due::Idle { next } => {
                    if let Some(next) = next {
                        wake_at(next);
                    }
                    continue;
                }
                Due::Once => schedule.start_time,
                Due::Windows(windows) => windows.first().map_or(now, |window| window.end),
            }
        };
        due_flows.push((due_at, flow, last_end));
    }
    due_flows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.flow_id.cmp(&b.1.flow_id)));
    let mut claimed = Vec::new();
    for (_, flow, _) in due_flows {
        if claimed.len() == free_slots {
            break;
        }
        let Some(lease) = db.claim_lease(&flow.flow_id)? else {
            continue;
        };
        // State read after the claim: another node may have run the flow meanwhile.
        let state = db.schedule_state(&flow.flow_id)?;
        if state.as_ref().is_some_and(|state| !state.enabled) {
            release(lease, &flow.flow_id);
            continue;
        }
        let last_end = state
            .and_then(|state| state.last_window_end_ms)
            .and_then(DateTime::from_timestamp_millis);
        if let Err(err) = finish_interrupted_commits(db, layout, &flow.flow_id) {
            warn!(flow = %flow.bundle.name, flow_id = %flow.flow_id, error = %format!("{err:#}"),
                  "finishing a commit another node started failed; trying again later");
            release(lease, &flow.flow_id);
            continue;
        }
        claimed.push(Claimed {
            flow,
            last_end,
            lease,
        });
    }
    Ok(claimed)
}

/// Finishes the commits of `flow_id`'s windows that a node started and did not complete (it
/// died between `start_commit` and `complete_window`): the same step recovery takes at start
/// for a single process. Under the flow's lease. Blocking.
pub(crate) fn finish_interrupted_commits(
    db: &Db,
    layout: &DatasetLayout,
    flow_id: &FlowId,
) -> anyhow::Result<()> {
    for open in db.open_windows(flow_id)? {
        if open.status == CheckpointStatus::Committing {
            crate::run::recovery::publish_window(db, layout, &open.window, false)?;
            info!(flow_id = %flow_id, window = %open.window, "finished a commit an earlier holder of the flow started");
        }
    }
    Ok(())
}

/// Gives a lease back, logging (not failing) when that fails: it then runs out at its expiry.
/// Blocking.
pub(crate) fn release(lease: LeaseHold, flow_id: &FlowId) {
    if let Err(err) = lease.release() {
        warn!(flow_id = %flow_id, error = %err, "releasing a flow's lease failed; it expires at its TTL");
    }
}

/// Renews this node's leases and writes its heartbeat every third of the lease TTL (and at
/// once when its limiters start calling an origin) until `shutdown`; a lost lease cancels its
/// flow's run. Every [`SHARE_REFRESH`] it re-reads the live nodes and sets the limiters' shares.
/// At the end the node's heartbeat row is removed.
pub(crate) async fn keep_alive(
    db: Db,
    listen: String,
    limiters: Limiters,
    live: Arc<std::sync::Mutex<HashMap<FlowId, Arc<Progress>>>>,
    shutdown: Shutdown,
) {
    let (Some(node_id), Some(ttl)) = (db.node_id().cloned(), db.lease_ttl()) else {
        return;
    };
    let started_at_ms = Utc::now().timestamp_millis();
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut next_beat = tokio::time::Instant::now();
    loop {
        let beat = tokio::time::Instant::now() >= next_beat;
        if beat {
            next_beat = tokio::time::Instant::now() + every;
        }
        let step = {
            let db = db.clone();
            let node = Heartbeat {
                node_id: node_id.clone(),
                listen: listen.clone(),
                started_at_ms,
                ttl,
            };
            let limiters = limiters.clone();
            tokio::task::spawn_blocking(move || step_once(&db, &node, &limiters, beat)).await
        };
        match step {
            Ok(Ok(lost)) => {
                for flow_id in lost {
                    warn!(node = %node_id, flow_id = %flow_id,
                          "the flow's lease was taken by another node: cancelling its run here");
                    let progress = live
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .get(&flow_id)
                        .cloned();
                    if let Some(progress) = progress {
                        progress.cancel();
                    }
                }
            }
            Ok(Err(err)) => {
                warn!(node = %node_id, error = %err, "renewing leases failed; trying again")
            }
            Err(err) => warn!(node = %node_id, error = %err, "renewing leases panicked"),
        }
        let until_beat = next_beat.saturating_duration_since(tokio::time::Instant::now());
        tokio::select! {
            () = tokio::time::sleep(SHARE_REFRESH.min(until_beat)) => {}
            () = limiters.activity_changed() => next_beat = tokio::time::Instant::now(),
            () = shutdown.wait() => break,
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(err) = db.remove_node(&node_id) {
            warn!(node = %node_id, error = %err, "removing the node's heartbeat failed");
        }
    })
    .await;
}

/// What a node writes in its heartbeat row besides its leases and origins.
struct Heartbeat {
    node_id: NodeId,
    listen: String,
    started_at_ms: i64,
    ttl: Duration,
}

/// With `beat`, one renewal and heartbeat (the flows whose leases were lost are returned);
/// always, the limiters' shares from the live nodes' rows. Blocking.
fn step_once(
    db: &Db,
    node: &Heartbeat,
    limiters: &Limiters,
    beat: bool,
) -> Result<Vec<FlowId>, tributary_state::StateError> {
    let mut lost = Vec::new();
    if beat {
        let report = db.renew_leases()?;
        db.put_node(&NodeRecord {
            node_id: node.node_id.clone(),
            listen: node.listen.clone(),
            pid: std::process::id(),
            started_at_ms: node.started_at_ms,
            heartbeat_at_ms: Utc::now().timestamp_millis(),
            ttl_ms: i64::try_from(node.ttl.as_millis()).unwrap_or(i64::MAX),
            leases_held: report.renewed as u64,
            active_origins: limiters.active_origins(),
        })?;
        crate::telemetry::node_leases(node.node_id.as_str(), report.renewed);
        lost = report.lost;
    }
    let live_nodes = db.live_nodes(Utc::now().timestamp_millis())?;
    crate::telemetry::nodes_live(node.node_id.as_str(), live_nodes.len());
    limiters.set_peers(peers_by_origin(&live_nodes, &node.node_id));
    Ok(lost)
}

/// How many live nodes other than `me` call each origin.
fn peers_by_origin(live_nodes: &[NodeRecord], me: &NodeId) -> HashMap<String, u32> {
    let mut peers: HashMap<String, u32> = HashMap::new();
    for node in live_nodes.iter().filter(|node| &node.node_id != me) {
        let origins: HashSet<&String> = node.active_origins.iter().collect();
        for origin in origins {
            *peers.entry(origin.clone()).or_default() += 1;
        }
    }
    peers
}

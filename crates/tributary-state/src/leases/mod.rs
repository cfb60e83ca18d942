//! Leases and nodes: which daemon of a shared state runs which flow, and which daemons are
//! alive.
//!
//! A process becomes a node with [`Db::join_cluster`]. From then on it runs a flow only while it
//! holds the flow's [`Lease`]: a row `flow id -> {holder, token, expiry}` in the `leases` table,
//! claimed ([`Db::claim_lease`]) when the row is absent, expired or already this node's, renewed
//! by the holder well within its time to live ([`Db::renew_leases`]) and released (expired at
//! once, the token kept) when the node is done with the flow.
//!
//! Invariants:
//! - The token of a flow's lease only grows: every claim writes the stored token plus one, in
//!   one transaction that read the row (SERIALIZABLE on Postgres, so two nodes claiming at the
//!   same moment conflict and the retry sees the winner's row). Released leases keep their token.
//! - Fencing: on a node, every transition of the commit protocol of a window (begin, resume,
//!   continue, record parts, rewrite part sizes, fail, start and complete a commit) reads the
//!   flow's lease row inside its own transaction and goes through only if the row still names
//!   this node with the token this process claimed. A node that lost its lease (it was paused or
//!   cut off past the time to live, and another node claimed the flow) therefore cannot record,
//!   commit or publish anything more for that flow: the transition fails with
//!   [`StateError::LeaseLost`].
//! - A process that never joined a cluster (the sled state, one-shot commands) holds every
//!   lease implicitly: claims succeed without touching storage and nothing is fenced, because
//!   the state directory's lock already keeps other processes out.
//! - Nodes write a heartbeat row (`nodes` table) with their own time to live; a node whose last
//!   heartbeat is older than that is not live. Nothing here reads a clock of another machine
//!   except through those timestamps, so node clocks are assumed to agree to well within a TTL.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{KeyRange, Tx, TxResult, abort, tx_get, tx_put};
use crate::{Db, FlowId, StateError, codec, now_ms};

/// The id of a daemon process among those sharing a state (from the config, or host name and
/// pid): stable for the life of the process, shown in logs, `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

/// Who may run a flow, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub flow_id: FlowId,
    pub holder: NodeId,
    /// The fencing token: grows by one at every claim, never reused.
    pub token: u64,
    /// Past this instant (epoch ms) any node may claim the flow; 0 once released.
    pub expires_at_ms: i64,
    pub claimed_at_ms: i64,
}

/// One node's heartbeat row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: NodeId,
    /// The node's HTTP API address, as configured.
    pub listen: String,
    pub pid: u32,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    /// How long after its last heartbeat the node counts as gone (its lease TTL).
    pub ttl_ms: i64,
    /// Leases the node held at its last heartbeat.
    pub leases_held: u64,
    /// The API origins (`scheme://host:port`) the node calls under a rate limit now: each node
    /// takes its share of a host's limits from how many live nodes call it. Absent in rows of
    /// earlier releases.
    #[serde(default)]
    pub active_origins: Vec<String>,
}

/// A lease this process holds; see [`Db::claim_lease`]. Dropping it without
/// [`LeaseHold::release`] forgets it in this process only: the stored lease then runs out at its
/// expiry, and the node itself may claim it again before that.
#[derive(Debug)]
pub struct LeaseHold {
    db: Db,
    flow_id: FlowId,
    /// None: the process is not a node, the hold is implicit.
    token: Option<u64>,
    done: bool,
}

/// What [`Db::renew_leases`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewReport {
    pub renewed: usize,
    /// Flows whose lease another node took (or that vanished): their runs must stop.
    pub lost: Vec<FlowId>,
}

/// The leases this process holds, by flow (only on a node).
#[derive(Debug, Default)]
pub(crate) struct HeldLeases {
    /// This process's node id and lease time to live, once it joined.
    node: std::sync::OnceLock<(NodeId, Duration)>,
    held: Mutex<HashMap<FlowId, Held>>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    /// The token of the first claim of this run of holds: holds taken with an older token that
    /// this process replaced by a newer claim (without losing the lease) still count here.
    base_token: u64,
    /// Live [`LeaseHold`]s of the flow in this process (the scheduler's and a run's).
    holds: u32,
    lost: bool,
}

impl NodeId {
    /// A node id: non-empty, at most 200 characters, no control characters.
    pub fn try_new(id: impl Into<String>) -> Result<NodeId, StateError> {
        let id = id.into();
        if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
            return Err(StateError::InvalidInput {
                what: "node id".to_owned(),
                reason: format!(
                    "expected 1 to 200 characters without control characters, found {id:?}"
                ),
            });
        }
        Ok(NodeId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl HeldLeases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FlowId, Held>> {
        // Every change is a single insert or field update: a panic leaves the map consistent.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl Db {
    /// Makes this process the node `node_id` of a shared state, with leases that last `ttl`
    /// unless renewed: from now on runs need leases and the commit protocol is fenced (see the
    /// module header). Once per process; joining again with another id is refused.
    pub fn join_cluster(&self, node_id: NodeId, ttl: Duration) -> Result<(), StateError> {
        let leases = self.held_leases();
        let (joined, _) = leases.node.get_or_init(|| (node_id.clone(), ttl));
        if *joined != node_id {
            return Err(StateError::InvalidInput {
                what: "node id".to_owned(),
                reason: format!("this process is node {joined} already, not {node_id}"),
            });
        }
        Ok(())
    }

    /// This process's node id, once it joined a cluster.
    pub fn node_id(&self) -> Option<&NodeId> {
        self.held_leases().node.get().map(|(node_id, _)| node_id)
    }

    /// The lease time to live of this node (None when not a node).
    pub fn lease_ttl(&self) -> Option<Duration> {
        self.held_leases().node.get().map(|(_, ttl)| *ttl)
    }

    /// Claims the lease of `flow_id` for the node's TTL, or joins this process's hold of it.
    /// `None`: a live lease of another node has it. Blocking (one transaction on a node).
    pub fn claim_lease(&self, flow_id: &FlowId) -> Result<Option<LeaseHold>, StateError> {
        let Some((node, ttl)) = self.held_leases().node.get().cloned() else {
            return Ok(Some(LeaseHold {
                db: self.clone(),
                flow_id: flow_id.clone(),
                token: None,
                done: false,
            }));
        };
        {
            let mut held = self.held_leases().lock();
            if let Some(entry) = held.get_mut(flow_id)
                && !entry.lost
            {
                entry.holds += 1;
                return Ok(Some(LeaseHold {
                    db: self.clone(),
                    flow_id: flow_id.clone(),
                    token: Some(entry.token),
                    done: false,
                }));
            }
        }
        let trees = self.trees();
        let key = flow_id.as_str().as_bytes();
        let claimed = trees.transact("claiming a lease", &[&trees.leases], |tx| {
            let now = now_ms();
            let current: Option<Lease> = tx_get(tx, &trees.leases, key)?;
            if let Some(current) = &current
                && current.holder != node
                && current.expires_at_ms > now
            {
                return Ok(None);
            }
            let lease = Lease {
                flow_id: flow_id.clone(),
                holder: node.clone(),
                token: current.map_or(1, |lease| lease.token.saturating_add(1)),
                expires_at_ms: now.saturating_add(ttl_ms(ttl)),
                claimed_at_ms: now,
            };
            tx_put(tx, &trees.leases, key, "lease", &lease)?;
            Ok(Some(lease.token))
        })?;
        let Some(token) = claimed.flatten() else {
            return Ok(None);
        };
        let mut held = self.held_leases().lock();
        // A hold taken meanwhile by another caller of this process is replaced: the new token
        // is the one the row names now.
        let (holds, base_token) = held
            .get(flow_id)
            .filter(|entry| !entry.lost)
            .map_or((0, token), |entry| (entry.holds, entry.base_token));
        held.insert(
            flow_id.clone(),
            Held {
                token,
                base_token,
                holds: holds + 1,
                lost: false,
            },
        );
        Ok(Some(LeaseHold {
            db: self.clone(),
            flow_id: flow_id.clone(),
            token: Some(token),
            done: false,
        }))
    }

    /// Pushes the expiry of every lease this node holds to now + its TTL; a lease whose row no
    /// longer names this node with our token is lost. Blocking.
    pub fn renew_leases(&self) -> Result<RenewReport, StateError> {
        let mut report = RenewReport::default();
        let Some((node, ttl)) = self.held_leases().node.get().cloned() else {
            return Ok(report);
        };
        let held: Vec<(FlowId, u64)> = self
            .held_leases()
            .lock()
            .iter()
            .filter(|(_, entry)| !entry.lost)
            .map(|(flow_id, entry)| (flow_id.clone(), entry.token))
            .collect();
        let trees = self.trees();
        for (flow_id, token) in held {
            let key = flow_id.as_str().as_bytes();
            let kept = trees.transact("renewing a lease", &[&trees.leases], |tx| {
                let Some(mut lease) = tx_get::<Lease>(tx, &trees.leases, key)? else {
                    return Ok(false);
                };
                if lease.holder != node || lease.token != token {
                    return Ok(false);
                }
                lease.expires_at_ms = now_ms().saturating_add(ttl_ms(ttl));
                tx_put(tx, &trees.leases, key, "lease", &lease)?;
                Ok(true)
            })?;
            if kept == Some(true) {
                report.renewed += 1;
            } else {
                let mut held = self.held_leases().lock();
                if let Some(entry) = held.get_mut(&flow_id)
                    && entry.token == token
                {
                    entry.lost = true;
                }
                report.lost.push(flow_id);
            }
        }
        Ok(report)
    }

    /// The flows this process holds leases of, with their tokens (none when not a node).
    pub fn held_leases_snapshot(&self) -> Vec<(FlowId, u64)> {
        let mut held: Vec<(FlowId, u64)> = self
            .held_leases()
            .lock()
            .iter()
            .filter(|(_, entry)| !entry.lost)
            .map(|(flow_id, entry)| (flow_id.clone(), entry.token))
            .collect();
        held.sort();
        held
    }

    /// Every stored lease, live or not, in flow-id order.
    pub fn leases(&self) -> Result<Vec<Lease>, StateError> {
        let mut leases = Vec::new();
        for (_, lease) in self.trees().leases.values_with_prefix::<Lease>(b"")? {
            leases.push(lease);
        }
        Ok(leases)
    }

    /// Writes this node's heartbeat row.
    pub fn put_node(&self, node: &NodeRecord) -> Result<(), StateError> {
        self.trees()
            .nodes
            .put(node.node_id.as_str().as_bytes(), "node", node)
    }

    /// Removes a node's heartbeat row (at a clean stop); whether it existed.
    pub fn remove_node(&self, node_id: &NodeId) -> Result<bool, StateError> {
        self.trees().nodes.remove(node_id.as_str().as_bytes())
    }

    /// The nodes whose last heartbeat is within their time to live at `now_ms`, by id.
    pub fn live_nodes(&self, now_ms: i64) -> Result<Vec<NodeRecord>, StateError> {
        let mut nodes = Vec::new();
        self.trees()
            .nodes
            .scan(KeyRange::prefix(b""), false, |key, bytes| {
                let node: NodeRecord = codec::decode("nodes", key, bytes)?;
                if node.heartbeat_at_ms.saturating_add(node.ttl_ms) >= now_ms {
                    nodes.push(node);
                }
                Ok(ControlFlow::Continue(()))
            })?;
        Ok(nodes)
    }

    /// Inside a commit-protocol transaction: refuses to go on unless this process holds the
    /// lease of `flow_id` with the token the stored row names. Not a node: nothing to check.
    pub(crate) fn tx_check_fence(&self, tx: &mut dyn Tx, flow_id: &FlowId) -> TxResult<()> {
        let Some(node) = self.node_id() else {
            return Ok(());
        };
        let held = self.held_leases().lock().get(flow_id).copied();
        let lost = |reason: String| {
            abort(StateError::LeaseLost {
                flow: flow_id.to_string(),
                node: node.to_string(),
                reason,
            })
        };
        let Some(held) = held.filter(|held| !held.lost) else {
            return Err(lost("this node holds no lease of the flow".to_owned()));
        };
        let trees = self.trees();
        match tx_get::<Lease>(tx, &trees.leases, flow_id.as_str().as_bytes())? {
            Some(lease) if lease.holder == *node && lease.token == held.token => Ok(()),
            Some(lease) => Err(lost(format!(
                "node {} holds it now with token {} (ours was {})",
                lease.holder, lease.token, held.token
            ))),
            None => Err(lost("the lease row is gone".to_owned())),
        }
    }
}

impl LeaseHold {
    pub fn flow_id(&self) -> &FlowId {
        &self.flow_id
    }

    /// The fencing token (None when the process is not a node).
    pub fn token(&self) -> Option<u64> {
        self.token
    }

    /// Whether the lease was found taken by another node at a renewal.
    pub fn is_lost(&self) -> bool {
        let Some(token) = self.token else {
            return false;
        };
        self.db
            .held_leases()
            .lock()
            .get(&self.flow_id)
            .is_none_or(|entry| entry.lost || token < entry.base_token)
    }

    /// Gives the hold up; the last hold of the flow in this process also expires the stored
    /// lease at once, so another node may take the flow without waiting for the TTL. Blocking.
    pub fn release(mut self) -> Result<(), StateError> {
        self.done = true;
        let Some(token) = self.token else {
            return Ok(());
        };
        let Some(token) = self.forget(token) else {
            return Ok(());
        };
        let Some(node) = self.db.node_id().cloned() else {
            return Ok(());
        };
        let trees = self.db.trees();
        let key = self.flow_id.as_str().as_bytes();
        trees.transact("releasing a lease", &[&trees.leases], |tx| {
            let Some(mut lease) = tx_get::<Lease>(tx, &trees.leases, key)? else {
                return Ok(());
            };
            if lease.holder == node && lease.token == token {
                lease.expires_at_ms = 0;
                tx_put(tx, &trees.leases, key, "lease", &lease)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Drops this hold from the process's count. When it was the last one of the flow: the
    /// token the stored lease names (the newest claim of this process).
    fn forget(&self, token: u64) -> Option<u64> {
        let mut held = self.db.held_leases().lock();
        let entry = held.get_mut(&self.flow_id)?;
        if token < entry.base_token {
            // Our lease was lost and claimed again since: the new holds are counted apart.
            return None;
        }
        entry.holds = entry.holds.saturating_sub(1);
        if entry.holds > 0 {
            return None;
        }
        let current = entry.token;
        let was_lost = entry.lost;
        held.remove(&self.flow_id);
        (!was_lost).then_some(current)
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        if !self.done
            && let Some(token) = self.token
        {
            self.forget(token);
        }
    }
}

#[cfg(test)]
mod tests;

//! The set of flows the scheduler runs, shared with whoever changes it while the daemon runs
//! (the `flows_dir` watcher, the HTTP API).
//!
//! Invariant: at most one [`DaemonFlow`] per flow id. Every change bumps a version that the
//! scheduler watches, so an added, edited or removed flow takes effect at the scheduler's next
//! wake — which the change itself triggers — without a restart. A run already going keeps the
//! bundle it started with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tributary_state::FlowId;

use super::DaemonFlow;

/// The flows of a running daemon; cheap to clone, all clones share one set.
#[derive(Debug, Clone)]
pub struct FlowRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    flows: Mutex<BTreeMap<FlowId, DaemonFlow>>,
    version: watch::Sender<u64>,
}

impl Default for FlowRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowRegistry {
    /// An empty set.
    pub fn new() -> Self {
        let (version, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                flows: Mutex::new(BTreeMap::new()),
                version,
            }),
        }
    }

    /// A set holding `flows` (a later flow with the same id replaces an earlier one).
    pub fn from_flows(flows: impl IntoIterator<Item = DaemonFlow>) -> Self {
        let registry = Self::new();
        {
            let mut map = registry.lock();
            for flow in flows {
                crate::telemetry::register_flow(&flow.bundle.name, &flow.flow_id);
                map.insert(flow.flow_id.clone(), flow);
            }
        }
        registry
    }

    /// Adds `flow`, or replaces the flow with its id. Returns whether one was replaced.
    pub fn upsert(&self, flow: DaemonFlow) -> bool {
        crate::telemetry::register_flow(&flow.bundle.name, &flow.flow_id);
        let replaced = self.lock().insert(flow.flow_id.clone(), flow).is_some();
        self.bump();
        replaced
    }

    /// Removes the flow with this id; its state stays. Returns the removed flow.
    pub fn remove(&self, flow_id: &FlowId) -> Option<DaemonFlow> {
        let removed = self.lock().remove(flow_id);
        if removed.is_some() {
            self.bump();
        }
        removed
    }

    /// The flow with this id.
    pub fn get(&self, flow_id: &FlowId) -> Option<DaemonFlow> {
        self.lock().get(flow_id).cloned()
    }

    /// Every flow, in flow-id order.
    pub fn snapshot(&self) -> Vec<DaemonFlow> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that sees every later change (for the scheduler loop).
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    fn bump(&self) {
        self.inner.version.send_modify(|version| *version += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<FlowId, DaemonFlow>> {
        // The map has no invariant a panic half-way could break.
        self.inner
            .flows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

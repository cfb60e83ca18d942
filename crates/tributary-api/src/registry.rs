//! The set of flows the scheduler runs, as the API changes it: `upsert` a flow created or
//! patched over HTTP, `remove` a deleted one. A stand-in with the shape of the engine's
//! `daemon::FlowRegistry` (clone-able, `upsert` / `remove` / `snapshot`, a change signal) until
//! the engine's own lands; then this module goes and the engine's type is used as is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tributary_engine::daemon::DaemonFlow;
use tributary_state::FlowId;

/// Clone-able handle to the scheduled flows.
#[derive(Debug, Clone, Default)]
pub struct FlowRegistry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    flows: Mutex<BTreeMap<FlowId, DaemonFlow>>,
    changed: Notify,
}

impl FlowRegistry {
    pub fn new(flows: Vec<DaemonFlow>) -> FlowRegistry {
        let registry = FlowRegistry::default();
        for flow in flows {
            registry.upsert(flow);
        }
        registry
    }

    pub fn upsert(&self, flow: DaemonFlow) {
        self.lock().insert(flow.flow_id.clone(), flow);
        self.inner.changed.notify_waiters();
    }

    pub fn remove(&self, flow_id: &FlowId) {
        self.lock().remove(flow_id);
        self.inner.changed.notify_waiters();
    }

    pub fn snapshot(&self) -> Vec<DaemonFlow> {
        self.lock().values().cloned().collect()
    }

    /// Resolves at the next change.
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<FlowId, DaemonFlow>> {
        self.inner
            .flows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

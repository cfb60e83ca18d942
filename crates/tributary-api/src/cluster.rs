//! The API on a node of a shared state: other nodes create, change and delete entities in the
//! same database, so this process's view of them ([`crate::store::EntityStore`]) and the
//! scheduler's set of flows are brought up to date from state ([`follow_shared_state`]) instead
//! of being trusted as the only writer's memory.
//!
//! Invariants: an API request that starts after a write on any node was answered sees that
//! write ([`sync_before_request`]: the view is brought up to date with state first, which costs
//! one read of the entities epoch when nothing changed); within one `interval` of a write on
//! any node, every node schedules the same flows. Runs, batches, datasets and flow health are
//! read from state on every request already, so they answer the same on every node without
//! this.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use tracing::{debug, warn};

use crate::ApiState;
use crate::error::ApiError;

/// Route layer of every API operation on a shared state: the entity view is brought up to date
/// before the handler reads it, so every node answers what the last answered write left.
pub(crate) async fn sync_before_request(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    if state.inner.shared_state {
        let synced = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || state.store().sync_with_state()).await
        };
        match synced {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return ApiError::from(err).into_response(),
            Err(err) => {
                return ApiError::internal("reading the entities of the shared state", err)
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// Re-reads the entities (and the scheduler's flows) whenever the state's entities epoch moved,
/// checking every `interval`, until the task is aborted.
pub async fn follow_shared_state(state: ApiState, interval: Duration) {
    let mut seen = state.engine().db.entities_epoch().ok().flatten();
    loop {
        tokio::time::sleep(interval).await;
        let refreshed = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || refresh(&state, seen)).await
        };
        match refreshed {
            Ok(Ok(epoch)) => seen = epoch,
            Ok(Err(err)) => {
                warn!(error = %format!("{err:#}"), "re-reading the entities of the shared state failed; trying again")
            }
            Err(err) => warn!(error = %err, "re-reading the entities of the shared state panicked"),
        }
    }
}

/// Reloads when the epoch differs from `seen`; the epoch the view now reflects.
fn refresh(state: &ApiState, seen: Option<u64>) -> anyhow::Result<Option<u64>> {
    // Read before the reload: a write that lands during it moves the epoch again.
    let epoch = state.engine().db.entities_epoch()?;
    if epoch == seen {
        return Ok(seen);
    }
    state.store().sync_with_state()?;
    let flows = crate::scheduled_flows(state);
    let ids: HashSet<_> = flows.iter().map(|flow| flow.flow_id.clone()).collect();
    let registry = state.registry();
    for flow in registry.snapshot() {
        if !ids.contains(&flow.flow_id) {
            registry.remove(&flow.flow_id);
        }
    }
    let n_flows = flows.len();
    for flow in flows {
        registry.upsert(flow);
    }
    debug!(flows = n_flows, "entities re-read from the shared state");
    Ok(epoch)
}

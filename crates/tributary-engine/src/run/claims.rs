//! The windows this process is running right now, so two runs never work on one window at once.
//!
//! Every run claims its window before it looks at the window's checkpoint and keeps the claim
//! until it has ended. A second run of the same flow whose window equals or overlaps a claimed
//! one — the scheduler's slot and an ad hoc `POST /runs`, two re-triggers, two `backfill`
//! invocations inside one daemon — is refused instead of resuming the first run's checkpoint
//! beside it (which would stage the same pages twice). Across processes the state directory's
//! lock plays this part; one process holds a state directory at a time.
//!
//! Invariant: a claim is released exactly when its [`WindowClaim`] is dropped, including when
//! the run's future is cancelled or panics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tributary_state::FlowId;

use crate::schedule::Window;

/// The claimed windows of every flow, shared by the clones of an [`super::Engine`].
#[derive(Debug, Clone, Default)]
pub struct RunningWindows {
    claimed: Arc<Mutex<HashMap<FlowId, Vec<Claimed>>>>,
}

/// A window as claimed: `None` for a flow without a schedule (which runs one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Claimed {
    window: Option<(Option<i64>, i64)>,
}

/// Proof that a run holds its window; dropping it releases the window.
#[derive(Debug)]
pub struct WindowClaim {
    running: RunningWindows,
    flow_id: FlowId,
    claimed: Claimed,
}

/// Why a window could not be claimed: the window of a run already under way that it meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowBusy {
    pub flow_id: FlowId,
    pub running: Option<(Option<i64>, i64)>,
}

impl RunningWindows {
    /// Claims `window` of `flow_id`, or says which running window is in the way.
    pub fn claim(
        &self,
        flow_id: &FlowId,
        window: Option<&Window>,
    ) -> Result<WindowClaim, WindowBusy> {
        let asked = Claimed::of(window);
        let mut claimed = self.lock();
        let of_flow = claimed.entry(flow_id.clone()).or_default();
        busy_with(flow_id, of_flow, &asked)?;
        of_flow.push(asked);
        Ok(WindowClaim {
            running: self.clone(),
            flow_id: flow_id.clone(),
            claimed: asked,
        })
    }

    /// Whether any run of `flow_id` is under way.
    pub fn is_running(&self, flow_id: &FlowId) -> bool {
        self.lock()
            .get(flow_id)
            .is_some_and(|held| !held.is_empty())
    }

    /// The windows of `flow_id` that runs of this process work on now, as `(start, end)` in
    /// epoch ms (`None`: an open start, or the one run of a flow without a schedule).
    pub fn windows_of(&self, flow_id: &FlowId) -> Vec<Option<(Option<i64>, i64)>> {
        self.lock()
            .get(flow_id)
            .map(|held| held.iter().map(|claimed| claimed.window).collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FlowId, Vec<Claimed>>> {
        // The map is only read and pushed to under the lock; a panic while it is held cannot
        // leave it half-updated, so a poisoned lock is still a consistent map.
        self.claimed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl WindowClaim {
    /// Whether this claim is on `window` of `flow_id`.
    pub fn holds(&self, flow_id: &FlowId, window: Option<&Window>) -> bool {
        self.flow_id == *flow_id && self.claimed == Claimed::of(window)
    }
}

impl Claimed {
    fn of(window: Option<&Window>) -> Self {
        Claimed {
            window: window.map(|w| {
                (
                    w.start.map(|t| t.timestamp_millis()),
                    w.end.timestamp_millis(),
                )
            }),
        }
    }
}

fn busy_with(flow_id: &FlowId, of_flow: &[Claimed], asked: &Claimed) -> Result<(), WindowBusy> {
    match of_flow.iter().find(|held| meets(held, asked)) {
        Some(in_the_way) => Err(WindowBusy {
            flow_id: flow_id.clone(),
            running: in_the_way.window,
        }),
        None => Ok(()),
    }
}

impl Drop for WindowClaim {
    fn drop(&mut self) {
        let mut claimed = self.running.lock();
        if let Some(of_flow) = claimed.get_mut(&self.flow_id) {
            if let Some(at) = of_flow.iter().position(|held| *held == self.claimed) {
                of_flow.swap_remove(at);
            }
            if of_flow.is_empty() {
                claimed.remove(&self.flow_id);
            }
        }
    }
}

impl std::fmt::Display for WindowBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.running {
            None => write!(f, "flow {} is already running", self.flow_id),
            Some((start, end)) => write!(
                f,
                "flow {} is already running the window {} to {}; wait for that run to end",
                self.flow_id,
                start.map_or_else(|| "the beginning".to_owned(), epoch_text),
                epoch_text(end)
            ),
        }
    }
}

fn epoch_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
}

/// Whether two claims may not run side by side: unscheduled runs exclude each other and every
/// window; windows exclude each other when their half-open ranges `[start, end)` intersect.
fn meets(held: &Claimed, asked: &Claimed) -> bool {
    match (held.window, asked.window) {
        (Some((held_start, held_end)), Some((asked_start, asked_end))) => {
            let held_start = held_start.unwrap_or(i64::MIN);
            let asked_start = asked_start.unwrap_or(i64::MIN);
            // Equal windows always meet, even empty ones.
            (held_start, held_end) == (asked_start, asked_end)
                || (held_start < asked_end && asked_start < held_end)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn window(start: Option<i64>, end: i64) -> Window {
        Window {
            start: start.map(|s| Utc.timestamp_opt(s, 0).unwrap()),
            end: Utc.timestamp_opt(end, 0).unwrap(),
        }
    }

    #[test]
    fn a_window_is_held_until_its_claim_drops() {
        let running = RunningWindows::default();
        let flow = FlowId::new("f");
        let first = running.claim(&flow, Some(&window(Some(0), 100))).unwrap();
        let busy = running
            .claim(&flow, Some(&window(Some(0), 100)))
            .unwrap_err();
        assert_eq!(busy.running, Some((Some(0), 100_000)));
        assert!(running.claim(&flow, Some(&window(Some(50), 150))).is_err());
        assert!(running.claim(&flow, Some(&window(None, 10))).is_err());
        // Adjacent windows and other flows run side by side.
        let next = running.claim(&flow, Some(&window(Some(100), 200))).unwrap();
        let other = running
            .claim(&FlowId::new("g"), Some(&window(Some(0), 100)))
            .unwrap();
        drop(first);
        let again = running.claim(&flow, Some(&window(Some(0), 100))).unwrap();
        drop((next, other, again));
        assert!(!running.is_running(&flow));
    }

    #[test]
    fn an_unscheduled_run_excludes_every_other_run_of_its_flow() {
        let running = RunningWindows::default();
        let flow = FlowId::new("f");
        let once = running.claim(&flow, None).unwrap();
        assert!(running.is_running(&flow));
        assert!(running.claim(&flow, None).is_err());
        assert!(running.claim(&flow, Some(&window(Some(0), 1))).is_err());
        drop(once);
        assert!(running.claim(&flow, None).is_ok());
    }
}

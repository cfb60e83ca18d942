//! Which time ranges of a flow its windows in state already cover, so that committed windows
//! never overlap.
//!
//! Invariant (enforced by `run_window`, planned around by `run`, `backfill` and the daemon): the
//! windows of one flow in state are pairwise disjoint. A window is run again only with exactly
//! its own bounds (which replaces its batches at commit); a range that overlaps other windows is
//! split into the parts no window covers ([`uncovered`]); and a window that is not complete
//! (interrupted, or cut short by `maximumRequest`) is finished with its own bounds before later
//! windows of its flow run ([`unfinished`]).
//!
//! As time ranges, a window with no start begins at the beginning of time, and the window of an
//! unscheduled flow (no bounds at all) covers all of time.

use chrono::{DateTime, Utc};
use tributary_state::{CheckpointStatus, Db, FlowId, StateError, WindowKey, WindowSummary};

use crate::run::window_key;
use crate::schedule::Window;

/// Another window of the flow shares time with the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub asked: WindowKey,
    pub existing: WindowSummary,
    /// The parts of the asked window that no window covers yet.
    pub uncovered: Vec<Window>,
}

/// Refuses `window` of `flow_id` when another window of the flow overlaps it (running exactly an
/// existing window's bounds again is fine: that replaces it).
pub fn check_disjoint(
    db: &Db,
    flow_id: &FlowId,
    window: Option<&Window>,
) -> Result<Result<(), Overlap>, StateError> {
    let asked = window_key(flow_id, window);
    let others: Vec<WindowSummary> = db
        .windows_overlapping(&asked)?
        .into_iter()
        .filter(|existing| existing.window != asked)
        .collect();
    let Some(existing) = others.first().cloned() else {
        return Ok(Ok(()));
    };
    let uncovered = match window {
        Some(window) => subtract(*window, &others),
        None => Vec::new(),
    };
    Ok(Err(Overlap {
        asked,
        existing,
        uncovered,
    }))
}

/// The parts of `window` that no window of the flow in state covers, in time order.
pub fn uncovered(db: &Db, flow_id: &FlowId, window: Window) -> Result<Vec<Window>, StateError> {
    let existing = db.windows_overlapping(&window_key(flow_id, Some(&window)))?;
    Ok(subtract(window, &existing))
}

/// The windows of a flow that are not complete (interrupted, committing, or open after
/// `maximumRequest`), with their own bounds, oldest first: they run before anything later.
/// `None` is the unwindowed window of a flow without a schedule.
pub fn unfinished(db: &Db, flow_id: &FlowId) -> Result<Vec<Option<Window>>, StateError> {
    let mut windows = Vec::new();
    for open in db.open_windows(flow_id)? {
        debug_assert!(open.status != CheckpointStatus::Complete);
        windows.push(window_of(&open.window));
    }
    Ok(windows)
}

/// The schedule window a state key stands for (`None`: unwindowed).
pub fn window_of(key: &WindowKey) -> Option<Window> {
    let end = DateTime::<Utc>::from_timestamp_millis(key.end_ms?)?;
    let start = match key.start_ms {
        None => None,
        Some(ms) => Some(DateTime::<Utc>::from_timestamp_millis(ms)?),
    };
    Some(Window { start, end })
}

/// How an overlap reads to a person: which window is there, and what to do instead.
pub fn describe(overlap: &Overlap) -> String {
    let existing = &overlap.existing;
    let status = match existing.status {
        CheckpointStatus::Complete => "committed",
        CheckpointStatus::Open => "open (cut short by maximumRequest)",
        CheckpointStatus::InProgress | CheckpointStatus::Committing => "interrupted",
    };
    let mut text = format!(
        "window {} overlaps the {status} window {} (batch {}); a window runs again only with exactly its own bounds",
        range_text(&overlap.asked),
        range_text(&existing.window),
        existing.batch_id
    );
    if existing.status != CheckpointStatus::Complete {
        text.push_str(&format!(
            ", and that window must be finished first (run it with {})",
            flags(window_of(&existing.window).as_ref())
        ));
    } else if let Some(first) = overlap.uncovered.first() {
        text.push_str(&format!(
            "; to ingest only what is not covered yet, run {}",
            flags(Some(first))
        ));
        if overlap.uncovered.len() > 1 {
            text.push_str(&format!(
                " ({} uncovered ranges in all, or use `tributary backfill`, which runs only those)",
                overlap.uncovered.len()
            ));
        }
    }
    text
}

fn flags(window: Option<&Window>) -> String {
    match window {
        None => "no window flags".to_owned(),
        Some(window) => match window.start {
            Some(start) => format!(
                "--window-start {} --window-end {}",
                start.to_rfc3339(),
                window.end.to_rfc3339()
            ),
            None => format!("--window-end {}", window.end.to_rfc3339()),
        },
    }
}

fn range_text(key: &WindowKey) -> String {
    let at = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
    };
    match (key.start_ms, key.end_ms) {
        (None, None) => "(unwindowed: all of the source)".to_owned(),
        (start, end) => format!(
            "[{}, {})",
            start.map_or_else(|| "beginning".to_owned(), at),
            end.map_or_else(|| "end of time".to_owned(), at)
        ),
    }
}

/// `window` minus the ranges of `existing` (in start order, as state lists them).
fn subtract(window: Window, existing: &[WindowSummary]) -> Vec<Window> {
    // Work in milliseconds with the open start as i64::MIN.
    let mut pieces: Vec<(i64, i64)> = vec![(
        window.start.map_or(i64::MIN, |t| t.timestamp_millis()),
        window.end.timestamp_millis(),
    )];
    for other in existing {
        let other_start = other.window.start_ms.unwrap_or(i64::MIN);
        let other_end = other.window.end_ms.unwrap_or(i64::MAX);
        let mut next = Vec::with_capacity(pieces.len() + 1);
        for (start, end) in pieces {
            if other_end <= start || end <= other_start {
                next.push((start, end));
                continue;
            }
            if start < other_start {
                next.push((start, other_start));
            }
            if other_end < end {
                next.push((other_end, end));
            }
        }
        pieces = next;
    }
    pieces
        .into_iter()
        .filter_map(|(start, end)| {
            let end = DateTime::<Utc>::from_timestamp_millis(end)?;
            let start = if start == i64::MIN {
                None
            } else {
                Some(DateTime::<Utc>::from_timestamp_millis(start)?)
            };
            Some(Window { start, end })
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! Schedule arithmetic: which windows a flow's schedule makes due, given where the flow's
//! previous window ended and what time it is. Pure functions of a clock value, so tests drive
//! them with any instant.
//!
//! Slots: a periodic schedule (`minute` / `hour` / `day` / `week` × `interval`) has its slots at
//! `startTime + k·period` for k ≥ 0; a cron schedule (our extension, `scheduleParams.cron` with
//! an optional IANA `timeZone`) has its slots where the expression fires after `startTime`.
//! The run at slot `t` covers the half-open window `[previous window end, t)`.
//!
//! The first window: with `backfill` it has no start (all history up to the first slot); without,
//! it starts at `startTime` and the first run happens at the next slot. `once` runs a single
//! unwindowed run at `startTime`.
//!
//! Catch-up after downtime: every missed slot becomes one window, in order. When more than
//! `max_catch_up` slots were missed, the oldest ones are merged into the first window instead of
//! being skipped, so no stretch of time is ever left out.

use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tributary_spec::{FlowSchedule, Frequency};

/// A half-open time window `[start, end)`; `start: None` means "from the beginning of history".
/// The spec crate's type, so the fetcher and the scheduler speak of the same thing.
pub type Window = tributary_spec::ScheduleWindow;

/// What a schedule asks for at a given moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing to run before `next` (None: the schedule has no future slot).
    Idle { next: Option<DateTime<Utc>> },
    /// Run these windows, in order.
    Windows(Vec<Window>),
    /// A `once` flow whose time has come and which has not run yet: one unwindowed run.
    Once,
}

/// A schedule that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "scheduleParams.cron: invalid cron expression {expression:?}: {reason} (6 or 7 fields, seconds first, e.g. \"0 0 * * * *\")"
    )]
    BadCron { expression: String, reason: String },
    #[error(
        "scheduleParams.timeZone: unknown time zone {0:?} (expected an IANA name such as Europe/Berlin)"
    )]
    BadTimeZone(String),
}

/// A schedule ready to produce slots: the periodic period or the parsed cron expression.
#[derive(Debug, Clone)]
pub struct Slots {
    start_time: DateTime<Utc>,
    kind: SlotKind,
}

#[derive(Debug, Clone)]
enum SlotKind {
    Once,
    Every(Duration),
    Cron {
        schedule: Box<cron::Schedule>,
        tz: chrono_tz::Tz,
    },
}

impl Slots {
    /// Compiles a flow schedule. Fails only on a bad cron expression or time zone.
    pub fn try_new(schedule: &FlowSchedule) -> Result<Self, ScheduleError> {
        let kind = if let Some(cron) = &schedule.cron {
            let parsed = cron::Schedule::from_str(&cron.expression).map_err(|err| {
                ScheduleError::BadCron {
                    expression: cron.expression.clone(),
                    reason: err.to_string(),
                }
            })?;
            let tz = match &cron.time_zone {
                None => chrono_tz::UTC,
                Some(name) => chrono_tz::Tz::from_str(name)
                    .map_err(|_| ScheduleError::BadTimeZone(name.clone()))?,
            };
            SlotKind::Cron {
                schedule: Box::new(parsed),
                tz,
            }
        } else {
            match period(schedule.frequency, schedule.interval) {
                None => SlotKind::Once,
                Some(period) => SlotKind::Every(period),
            }
        };
        Ok(Self {
            start_time: schedule.start_time,
            kind,
        })
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            SlotKind::Once => (t < self.start_time).then_some(self.start_time),
            SlotKind::Every(period) => {
                if t < self.start_time {
                    return Some(self.start_time);
                }
                let elapsed = (t - self.start_time).num_milliseconds();
                let step = period.num_milliseconds().max(1);
                let k = elapsed / step + 1;
                // A slot past the end of representable time does not exist.
                let offset = Duration::try_milliseconds(k.checked_mul(step)?)?;
                self.start_time.checked_add_signed(offset)
            }
            SlotKind::Cron { schedule, tz } => {
                // Slots start at startTime: nothing fires before it.
                let from = if t < self.start_time {
                    self.start_time.checked_sub_signed(Duration::seconds(1))?
                } else {
                    t
                };
                let local = tz.from_utc_datetime(&from.naive_utc());
                schedule
                    .after(&local)
                    .next()
                    .map(|slot| slot.with_timezone(&Utc))
            }
        }
    }

    /// The time between the slot after `t` and the one after it (a periodic schedule's
    /// period; a cron schedule's gap there). None for `once`.
    pub fn interval_near(&self, t: DateTime<Utc>) -> Option<std::time::Duration> {
        match &self.kind {
            SlotKind::Once => None,
            SlotKind::Every(period) => period.to_std().ok(),
            SlotKind::Cron { .. } => {
                let first = self.next_after(t)?;
                let second = self.next_after(first)?;
                (second - first).to_std().ok()
            }
        }
    }

    /// The first slot at or after `startTime`.
    pub fn first(&self) -> Option<DateTime<Utc>> {
        self.next_after(
            self.start_time
                .checked_sub_signed(Duration::milliseconds(1))?,
        )
    }
}

/// The slot the flow's next window is due at (the end of its next window; for `once`, its
/// start time until it ran), whether or not that slot is past. None: no slot is left.
pub fn next_due(
    schedule: &FlowSchedule,
    slots: &Slots,
    last_end: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if matches!(slots.kind, SlotKind::Once) {
        return last_end.is_none().then_some(schedule.start_time);
    }
    match last_end {
        Some(end) => slots.next_after(end),
        None if schedule.backfill => slots.first(),
        None => slots.next_after(schedule.start_time),
    }
}

/// The windows a flow should run now.
///
/// `last_end` is where the previous window of this flow ended (None: the flow never ran).
/// `once_done` says whether a `once` flow already ran.
pub fn due(
    schedule: &FlowSchedule,
    slots: &Slots,
    last_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    max_catch_up: u32,
) -> Due {
    if matches!(slots.kind, SlotKind::Once) {
        return match last_end {
            None if now >= schedule.start_time => Due::Once,
            None => Due::Idle {
                next: Some(schedule.start_time),
            },
            Some(_) => Due::Idle { next: None },
        };
    }
    // Where the next window starts, and the first slot that can end it.
    let (mut start, mut slot) = match last_end {
        Some(end) => (Some(end), slots.next_after(end)),
        None if schedule.backfill => (None, slots.first()),
        None => {
            // Without backfill the first window starts at startTime and ends at the next slot.
            (
                Some(schedule.start_time),
                slots.next_after(schedule.start_time),
            )
        }
    };
    let mut ends = Vec::new();
    while let Some(t) = slot {
        if t > now {
            break;
        }
        ends.push(t);
        slot = slots.next_after(t);
    }
    if ends.is_empty() {
        return Due::Idle { next: slot };
    }
    // Too many missed slots: merge the oldest ones into the first window.
    let keep = (max_catch_up.max(1) as usize).min(ends.len());
    let skip = ends.len() - keep;
    let mut windows = Vec::with_capacity(keep);
    for end in ends.into_iter().skip(skip) {
        windows.push(Window { start, end });
        start = Some(end);
    }
    Due::Windows(windows)
}

/// The most windows one range may be split into (a backfill plans and reports every one).
pub const MAX_WINDOWS: i64 = 1_000_000;

/// Splits `[from, to)` into consecutive half-open windows of `step` (the last one shorter).
/// Refuses a step that is not positive or that would make more than [`MAX_WINDOWS`] windows.
pub fn split_range(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
) -> Result<Vec<Window>, String> {
    if step <= Duration::zero() {
        return Err(format!(
            "--step: expected a positive duration, found {step}"
        ));
    }
    if from >= to {
        return Ok(Vec::new());
    }
    let span_ms = (to - from).num_milliseconds();
    let step_ms = step.num_milliseconds().max(1);
    let n_windows = span_ms / step_ms + i64::from(span_ms % step_ms != 0);
    if n_windows > MAX_WINDOWS {
        return Err(format!(
            "--step {step} splits {} .. {} into {n_windows} windows, more than the {MAX_WINDOWS} a backfill takes: use a longer step",
            from.to_rfc3339(),
            to.to_rfc3339()
        ));
    }
    let mut windows = Vec::with_capacity(usize::try_from(n_windows).unwrap_or(0));
    let mut start = from;
    while start < to {
        // Past the end of representable time, the window simply ends at `to`.
        let end = start.checked_add_signed(step).map_or(to, |end| end.min(to));
        windows.push(Window {
            start: Some(start),
            end,
        });
        start = end;
    }
    Ok(windows)
}

fn period(frequency: Frequency, interval: u32) -> Option<Duration> {
    let interval = i64::from(interval.max(1));
    match frequency {
        Frequency::Once => None,
        Frequency::Minute => Some(Duration::minutes(interval)),
        Frequency::Hour => Some(Duration::hours(interval)),
        Frequency::Day => Some(Duration::days(interval)),
        Frequency::Week => Some(Duration::weeks(interval)),
    }
}

#[cfg(test)]
mod tests;

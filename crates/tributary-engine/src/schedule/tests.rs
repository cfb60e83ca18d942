use chrono::{DateTime, Duration, TimeZone, Utc};
use tributary_spec::{CronSchedule, FlowSchedule, Frequency};

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn periodic(start: &str, frequency: Frequency, interval: u32, backfill: bool) -> FlowSchedule {
    FlowSchedule {
        start_time: at(start),
        frequency,
        interval,
        backfill,
        cron: None,
    }
}

fn cron(start: &str, expression: &str, tz: Option<&str>) -> FlowSchedule {
    FlowSchedule {
        start_time: at(start),
        frequency: Frequency::Hour,
        interval: 1,
        backfill: true,
        cron: Some(CronSchedule {
            expression: expression.to_owned(),
            time_zone: tz.map(str::to_owned),
        }),
    }
}

/// Renders what `due` returns as one line per window, for compact expectations.
fn check(
    schedule: &FlowSchedule,
    last_end: Option<&str>,
    now: &str,
    max_catch_up: u32,
    expect: &[&str],
) {
    let slots = Slots::try_new(schedule).unwrap();
    let got = match due(schedule, &slots, last_end.map(at), at(now), max_catch_up) {
        Due::Once => vec!["once".to_owned()],
        Due::Idle { next } => vec![format!(
            "idle until {}",
            next.map_or("never".to_owned(), |t| t.to_rfc3339())
        )],
        Due::Windows(windows) => windows
            .iter()
            .map(|w| {
                format!(
                    "{} .. {}",
                    w.start.map_or("-".to_owned(), |t| t.to_rfc3339()),
                    w.end.to_rfc3339()
                )
            })
            .collect(),
    };
    assert_eq!(got, expect);
}

#[test]
fn every_frequency_steps_by_its_period_from_start_time() {
    let cases = [
        (Frequency::Minute, 15, "2024-01-01T00:15:00+00:00"),
        (Frequency::Hour, 2, "2024-01-01T02:00:00+00:00"),
        (Frequency::Day, 1, "2024-01-02T00:00:00+00:00"),
        (Frequency::Week, 1, "2024-01-08T00:00:00+00:00"),
    ];
    for (frequency, interval, second_slot) in cases {
        let schedule = periodic("2024-01-01T00:00:00Z", frequency, interval, false);
        // Without backfill the first window runs from startTime to the next slot.
        check(
            &schedule,
            None,
            second_slot,
            10,
            &[&format!("2024-01-01T00:00:00+00:00 .. {second_slot}")],
        );
    }
}

#[test]
fn first_run_with_backfill_covers_all_history() {
    let schedule = periodic("2024-01-01T00:00:00Z", Frequency::Hour, 1, true);
    check(
        &schedule,
        None,
        "2023-12-31T23:00:00Z",
        10,
        &["idle until 2024-01-01T00:00:00+00:00"],
    );
    check(
        &schedule,
        None,
        "2024-01-01T00:00:00Z",
        10,
        &["- .. 2024-01-01T00:00:00+00:00"],
    );
}

#[test]
fn next_window_starts_where_the_previous_ended() {
    let schedule = periodic("2024-01-01T00:00:00Z", Frequency::Hour, 1, true);
    check(
        &schedule,
        Some("2024-01-01T00:00:00Z"),
        "2024-01-01T00:59:59Z",
        10,
        &["idle until 2024-01-01T01:00:00+00:00"],
    );
    check(
        &schedule,
        Some("2024-01-01T00:00:00Z"),
        "2024-01-01T01:00:00Z",
        10,
        &["2024-01-01T00:00:00+00:00 .. 2024-01-01T01:00:00+00:00"],
    );
}

#[test]
fn missed_slots_are_caught_up_in_order_and_merged_past_the_bound() {
    let schedule = periodic("2024-01-01T00:00:00Z", Frequency::Hour, 1, true);
    check(
        &schedule,
        Some("2024-01-01T00:00:00Z"),
        "2024-01-01T03:30:00Z",
        10,
        &[
            "2024-01-01T00:00:00+00:00 .. 2024-01-01T01:00:00+00:00",
            "2024-01-01T01:00:00+00:00 .. 2024-01-01T02:00:00+00:00",
            "2024-01-01T02:00:00+00:00 .. 2024-01-01T03:00:00+00:00",
        ],
    );
    // Bound 2: the oldest missed slots merge into the first window, nothing is skipped.
    check(
        &schedule,
        Some("2024-01-01T00:00:00Z"),
        "2024-01-01T03:30:00Z",
        2,
        &[
            "2024-01-01T00:00:00+00:00 .. 2024-01-01T02:00:00+00:00",
            "2024-01-01T02:00:00+00:00 .. 2024-01-01T03:00:00+00:00",
        ],
    );
}

#[test]
fn once_runs_a_single_unwindowed_run() {
    let schedule = periodic("2024-01-01T00:00:00Z", Frequency::Once, 0, false);
    check(
        &schedule,
        None,
        "2023-12-31T00:00:00Z",
        10,
        &["idle until 2024-01-01T00:00:00+00:00"],
    );
    check(&schedule, None, "2024-01-01T00:00:01Z", 10, &["once"]);
    check(
        &schedule,
        Some("2024-01-01T00:00:01Z"),
        "2025-01-01T00:00:00Z",
        10,
        &["idle until never"],
    );
}

#[test]
fn cron_slots_follow_the_time_zone_across_a_dst_change() {
    // 02:30 local every day in Berlin; on 2024-03-31 clocks jump from 02:00 to 03:00, so that
    // day has no 02:30: the schedule fires at 01:30 UTC before and 00:30 UTC after.
    let schedule = cron(
        "2024-03-29T00:00:00Z",
        "0 30 2 * * *",
        Some("Europe/Berlin"),
    );
    let slots = Slots::try_new(&schedule).unwrap();
    let mut t = schedule.start_time;
    let mut got = Vec::new();
    for _ in 0..4 {
        t = slots.next_after(t).unwrap();
        got.push(t.to_rfc3339());
    }
    assert_eq!(
        got,
        [
            "2024-03-29T01:30:00+00:00",
            "2024-03-30T01:30:00+00:00",
            "2024-04-01T00:30:00+00:00",
            "2024-04-02T00:30:00+00:00",
        ]
    );
    // Windows are contiguous even across the skipped local time.
    check(
        &schedule,
        Some("2024-03-30T01:30:00Z"),
        "2024-04-01T12:00:00Z",
        10,
        &["2024-03-30T01:30:00+00:00 .. 2024-04-01T00:30:00+00:00"],
    );
}

#[test]
fn bad_cron_and_time_zone_are_named() {
    let err = Slots::try_new(&cron("2024-01-01T00:00:00Z", "not a cron", None)).unwrap_err();
    assert!(err.to_string().contains("not a cron"), "{err}");
    let err = Slots::try_new(&cron(
        "2024-01-01T00:00:00Z",
        "0 0 * * * *",
        Some("Mars/Olympus"),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("Mars/Olympus"), "{err}");
}

#[test]
fn backfill_ranges_split_into_exact_half_open_windows() {
    let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2024, 1, 31, 12, 0, 0).unwrap();
    let windows = split_range(from, to, Duration::days(1)).unwrap();
    assert_eq!(windows.len(), 31);
    assert_eq!(windows[0].start, Some(from));
    for pair in windows.windows(2) {
        assert_eq!(
            Some(pair[0].end),
            pair[1].start,
            "windows touch without overlap"
        );
    }
    assert_eq!(windows.last().unwrap().end, to);
}

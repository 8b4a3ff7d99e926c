#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use stratus_aws::{InvocationRecord, Meter, Outcome};

use super::*;

fn record(function: &str, ms: u64, init_ms: Option<u64>, outcome: Outcome) -> InvocationRecord {
    let duration = Duration::from_millis(ms);
    let init = init_ms.map(Duration::from_millis);
    InvocationRecord {
        request_id: uuid(),
        function: function.into(),
        version: "$LATEST".into(),
        start_ms: now_ms(),
        duration,
        init,
        billed_ms: stratus_aws::usage::billed_ms(duration, init),
        memory_mb: 1024,
        max_memory_used_mb: 40,
        outcome,
    }
}

fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("req-{}", N.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn records_are_reported_per_function_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metering::open(dir.path(), MeteringOptions::default()).unwrap();
    m.record(record("a", 200, Some(300), Outcome::Success));
    m.record(record("a", 100, None, Outcome::Success));
    m.record(record("a", 50, None, Outcome::FunctionError));
    m.record(record("b", 10, None, Outcome::Throttled));
    let report = m.usage(&UsageQuery::default()).unwrap();
    let a = &report.functions[0];
    assert_eq!(
        (a.function.as_str(), a.invocations, a.errors, a.cold_starts),
        ("a", 3, 1, 1)
    );
    // Init is billed on the cold start: 500 + 100 + 50 ms at 1 GB.
    assert_eq!(a.billed_ms, 650);
    assert!((a.gb_seconds - 0.65).abs() < 1e-12);
    assert_eq!(a.duration_p50_ms, Some(100.0));
    assert_eq!(report.functions[1].throttles, 1);
    let text = m.render_metrics(PlatformGauges::default());
    assert!(
        text.contains("stratus_lambda_invocations_total{function=\"a\"} 3"),
        "{text}"
    );
    assert!(text.contains("stratus_lambda_throttles_total{function=\"b\"} 1"));
    assert!(text.contains("stratus_lambda_cold_starts_total{function=\"a\"} 1"));
    m.close();
    drop(m);

    let m = Metering::open(dir.path(), MeteringOptions::default()).unwrap();
    let q = UsageQuery {
        function: Some("a".into()),
        ..Default::default()
    };
    let report = m.usage(&q).unwrap();
    assert_eq!(report.functions.len(), 1);
    assert_eq!(report.functions[0].invocations, 3);
    let later = UsageQuery {
        since_ms: now_ms() + 60_000,
        function: None,
    };
    assert!(m.usage(&later).unwrap().functions.is_empty());
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let opts = MeteringOptions {
        queue_capacity: 2,
        // The writer does not drain on its own during the test.
        tick: Duration::from_secs(3600),
        ..Default::default()
    };
    let m = Metering::open(dir.path(), opts).unwrap();
    // Past its first round: the writer now sleeps (one more round at most, should the
    // flush's wake-up come after it answered).
    m.flush().unwrap();
    for _ in 0..5 {
        m.record(record("f", 1, None, Outcome::Success));
    }
    let report = m.usage(&UsageQuery::default()).unwrap();
    let kept = report.functions[0].invocations;
    assert!((2..=4).contains(&kept), "{kept}");
    assert_eq!(kept + report.dropped_records, 5);
    m.close();
}

#[test]
fn retention_keeps_the_newest_rows_and_drops_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store::open(&dir.path().join(DB_FILE)).unwrap();
    let mut conn = conn;
    let mut old = record("old", 1, None, Outcome::Success);
    old.start_ms = 1000;
    let batch: Vec<_> = std::iter::once(old)
        .chain((0..10).map(|_| record("new", 1, None, Outcome::Success)))
        .collect();
    store::insert(&mut conn, &batch).unwrap();
    let removed = store::enforce_retention(&conn, 2000, 4).unwrap();
    assert_eq!(removed, 7);
    let rows = store::rows(&conn, 0, None).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.function == "new"));
}

#[test]
fn request_operations_are_bounded_per_service() {
    let dir = tempfile::tempdir().unwrap();
    let m = Metering::open(dir.path(), MeteringOptions::default()).unwrap();
    for i in 0..(MAX_OPERATIONS + 10) {
        m.observe_request("logs", &format!("Op{i}"), 200, Duration::from_millis(1));
    }
    m.observe_request("lambda", "Invoke", 429, Duration::from_millis(1));
    m.observe_request("", "", 400, Duration::from_millis(1));
    let text = m.render_metrics(PlatformGauges {
        live_environments: 3,
        idle_environments: 2,
        queue_depth: 7,
        oldest_event_age: Duration::from_millis(1500),
    });
    let logs_series = text
        .lines()
        .filter(|l| l.starts_with("stratus_requests_total{service=\"logs\""))
        .count();
    assert_eq!(logs_series, MAX_OPERATIONS + 1, "the rest count as other");
    assert!(
        text.contains(
            "stratus_requests_total{service=\"logs\",operation=\"other\",code=\"2xx\"} 10"
        )
    );
    assert!(text.contains(
        "stratus_requests_total{service=\"lambda\",operation=\"Invoke\",code=\"4xx\"} 1"
    ));
    assert!(text.contains(
        "stratus_requests_total{service=\"unknown\",operation=\"unknown\",code=\"4xx\"} 1"
    ));
    assert!(text.contains("stratus_lambda_environments{state=\"idle\"} 2"));
    assert!(text.contains("stratus_lambda_async_queue_depth 7"));
    assert!(text.contains("stratus_lambda_async_oldest_event_age_seconds 1.5"));
    m.close();
}

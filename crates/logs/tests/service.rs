//! The Logs service end to end on a temporary directory: groups, streams, events, paging,
//! filter patterns across streams, retention, the size cap, the LogSink, and a restart.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use stratus_aws::{LogSink, Scope, clock};
use stratus_logs::{
    DescribeLogGroupsInput, DescribeLogStreamsInput, FilterLogEventsInput, GetLogEventsInput,
    InputLogEvent, LogService, LogsOptions, OrderBy, PutLogEventsInput, Tags,
};

fn scope() -> Scope {
    Scope {
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
    }
}

fn open(dir: &Path, options: LogsOptions) -> LogService {
    LogService::open(dir, scope(), options).unwrap()
}

fn put(
    svc: &LogService,
    group: &str,
    stream: &str,
    events: &[(i64, &str)],
) -> stratus_logs::PutLogEventsOutput {
    svc.put_log_events(&PutLogEventsInput {
        log_group_name: group.into(),
        log_stream_name: stream.into(),
        log_events: events
            .iter()
            .map(|(t, m)| InputLogEvent {
                timestamp: *t,
                message: (*m).into(),
            })
            .collect(),
        sequence_token: Some("ignored".into()),
    })
    .unwrap()
}

fn get(
    svc: &LogService,
    group: &str,
    stream: &str,
    f: impl FnOnce(&mut GetLogEventsInput),
) -> stratus_logs::GetLogEventsOutput {
    let mut input = GetLogEventsInput {
        log_group_name: group.into(),
        log_stream_name: stream.into(),
        ..Default::default()
    };
    f(&mut input);
    svc.get_log_events(&input).unwrap()
}

fn filter(
    svc: &LogService,
    group: &str,
    pattern: &str,
    f: impl FnOnce(&mut FilterLogEventsInput),
) -> stratus_logs::FilterLogEventsOutput {
    let mut input = FilterLogEventsInput {
        log_group_name: group.into(),
        filter_pattern: Some(pattern.into()),
        ..Default::default()
    };
    f(&mut input);
    svc.filter_log_events(&input).unwrap()
}

fn messages<'a>(events: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    events.into_iter().cloned().collect()
}

#[test]
fn groups_and_streams() {
    let d = tempfile::tempdir().unwrap();
    let svc = open(d.path(), LogsOptions::default());
    let mut tags = Tags::new();
    tags.insert("team".into(), "core".into());
    svc.create_log_group("/app/b", tags.clone()).unwrap();
    svc.create_log_group("/app/a", Tags::new()).unwrap();
    svc.create_log_group("other", Tags::new()).unwrap();
    for (name, code) in [
        ("/app/a", "ResourceAlreadyExistsException"),
        ("bad name", "InvalidParameterException"),
        ("aws/reserved", "InvalidParameterException"),
        ("", "InvalidParameterException"),
    ] {
        assert_eq!(
            svc.create_log_group(name, Tags::new()).unwrap_err().code(),
            code,
            "{name}"
        );
    }

    // Listing: by name, prefix, and pages of one.
    let page = svc
        .describe_log_groups(&DescribeLogGroupsInput {
            log_group_name_prefix: Some("/app/".into()),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let g = &page.items[0];
    assert_eq!(g.log_group_name, "/app/a");
    assert_eq!(
        g.arn,
        "arn:aws:logs:us-east-1:000000000000:log-group:/app/a:*"
    );
    assert_eq!(
        g.log_group_arn,
        "arn:aws:logs:us-east-1:000000000000:log-group:/app/a"
    );
    assert!(g.creation_time > 0 && g.retention_in_days.is_none());
    let page2 = svc
        .describe_log_groups(&DescribeLogGroupsInput {
            log_group_name_prefix: Some("/app/".into()),
            limit: Some(1),
            next_token: page.next,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page2.items[0].log_group_name, "/app/b");
    assert_eq!(page2.next, None);
    let all = svc
        .describe_log_groups(&DescribeLogGroupsInput::default())
        .unwrap();
    assert_eq!(
        all.items
            .iter()
            .map(|g| g.log_group_name.as_str())
            .collect::<Vec<_>>(),
        ["/app/a", "/app/b", "other"]
    );
    for limit in [0, 51] {
        let e = svc
            .describe_log_groups(&DescribeLogGroupsInput {
                limit: Some(limit),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException");
    }

    // Tags, by name and by ARN with or without :*.
    assert_eq!(svc.list_tags_log_group("/app/b").unwrap(), tags);
    let arn = "arn:aws:logs:us-east-1:000000000000:log-group:/app/b";
    let mut more = Tags::new();
    more.insert("env".into(), "dev".into());
    svc.tag_resource(&format!("{arn}:*"), &more).unwrap();
    assert_eq!(svc.list_tags_for_resource(arn).unwrap().len(), 2);
    svc.untag_resource(arn, &["team".into()]).unwrap();
    svc.tag_log_group("/app/b", &tags).unwrap();
    svc.untag_log_group("/app/b", &["env".into()]).unwrap();
    assert_eq!(svc.list_tags_for_resource(arn).unwrap(), tags);
    let fifty: Tags = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    assert_eq!(
        svc.tag_resource(arn, &fifty).unwrap_err().code(),
        "TooManyTagsException"
    );
    assert_eq!(
        svc.tag_log_group("/app/b", &fifty).unwrap_err().code(),
        "InvalidParameterException"
    );
    assert_eq!(
        svc.list_tags_for_resource("arn:aws:logs:us-east-1:111111111111:log-group:/app/b")
            .unwrap_err()
            .code(),
        "ResourceNotFoundException"
    );
    assert_eq!(
        svc.list_tags_for_resource("not an arn").unwrap_err().code(),
        "InvalidParameterException"
    );
    assert_eq!(svc.resolve_group(None, Some(arn)).unwrap(), "/app/b");
    assert_eq!(svc.resolve_group(Some("/app/b"), None).unwrap(), "/app/b");
    assert!(svc.resolve_group(Some("/app/b"), Some(arn)).is_err());
    assert!(svc.resolve_group(None, None).is_err());
    // As an identifier, the ARN ending `:*` is refused: `*` is not in the member's pattern.
    let starred = format!("{}:*", arn.trim_end_matches(":*"));
    assert_eq!(
        svc.resolve_group(None, Some(&starred)).unwrap_err().code(),
        "InvalidParameterException"
    );

    // Retention: only AWS's values.
    svc.put_retention_policy("/app/a", 7).unwrap();
    for days in [0, 2, 4000, -1] {
        assert_eq!(
            svc.put_retention_policy("/app/a", days).unwrap_err().code(),
            "InvalidParameterException"
        );
    }
    assert_eq!(
        svc.put_retention_policy("/nope", 7).unwrap_err().code(),
        "ResourceNotFoundException"
    );

    // Streams.
    for s in ["s2", "s1", "s3"] {
        svc.create_log_stream("/app/a", s).unwrap();
    }
    assert_eq!(
        svc.create_log_stream("/app/a", "s1").unwrap_err().code(),
        "ResourceAlreadyExistsException"
    );
    assert_eq!(
        svc.create_log_stream("/app/a", "a:b").unwrap_err().code(),
        "InvalidParameterException"
    );
    assert_eq!(
        svc.create_log_stream("/nope", "s").unwrap_err().code(),
        "ResourceNotFoundException"
    );
    let now = clock::now_ms();
    put(&svc, "/app/a", "s1", &[(now - 3000, "old")]);
    put(&svc, "/app/a", "s3", &[(now - 2000, "mid")]);
    put(&svc, "/app/a", "s2", &[(now - 1000, "new")]);
    let streams = |order_by, descending, prefix: Option<&str>| {
        svc.describe_log_streams(&DescribeLogStreamsInput {
            log_group_name: "/app/a".into(),
            log_stream_name_prefix: prefix.map(Into::into),
            order_by,
            descending,
            ..Default::default()
        })
    };
    let names = |p: stratus_aws::Page<stratus_logs::LogStream>| {
        p.items
            .into_iter()
            .map(|s| s.log_stream_name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(streams(OrderBy::LogStreamName, false, None).unwrap()),
        ["s1", "s2", "s3"]
    );
    assert_eq!(
        names(streams(OrderBy::LogStreamName, true, None).unwrap()),
        ["s3", "s2", "s1"]
    );
    assert_eq!(
        names(streams(OrderBy::LastEventTime, true, None).unwrap()),
        ["s2", "s3", "s1"]
    );
    assert_eq!(
        names(streams(OrderBy::LogStreamName, false, Some("s3")).unwrap()),
        ["s3"]
    );
    assert_eq!(
        streams(OrderBy::LastEventTime, false, Some("s"))
            .unwrap_err()
            .code(),
        "InvalidParameterException"
    );
    let s1 = &streams(OrderBy::LogStreamName, false, Some("s1"))
        .unwrap()
        .items[0];
    assert_eq!(
        (s1.first_event_timestamp, s1.last_event_timestamp),
        (Some(now - 3000), Some(now - 3000))
    );
    assert!(s1.last_ingestion_time.unwrap() >= now && s1.stored_bytes > 0);
    assert_eq!(
        s1.arn,
        "arn:aws:logs:us-east-1:000000000000:log-group:/app/a:log-stream:s1"
    );
    // Paging by last event time, descending.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = svc
            .describe_log_streams(&DescribeLogStreamsInput {
                log_group_name: "/app/a".into(),
                order_by: OrderBy::LastEventTime,
                descending: true,
                limit: Some(1),
                next_token: token,
                ..Default::default()
            })
            .unwrap();
        seen.extend(names(stratus_aws::Page {
            items: page.items,
            next: None,
        }));
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["s2", "s3", "s1"]);

    svc.delete_log_stream("/app/a", "s3").unwrap();
    assert_eq!(
        svc.delete_log_stream("/app/a", "s3").unwrap_err().code(),
        "ResourceNotFoundException"
    );
    svc.delete_log_group("other").unwrap();
    assert_eq!(
        svc.delete_log_group("other").unwrap_err().code(),
        "ResourceNotFoundException"
    );
    assert!(!d.path().join("logs/other").exists());
}

#[test]
fn put_log_events_rules() {
    let d = tempfile::tempdir().unwrap();
    let svc = open(d.path(), LogsOptions::default());
    svc.create_log_group("g", Tags::new()).unwrap();
    svc.create_log_stream("g", "s").unwrap();
    let now = clock::now_ms();
    let day = 86_400_000;
    let big = "x".repeat(256 * 1024);
    let half = "y".repeat(200 * 1024);
    let try_put = |events: Vec<(i64, String)>| {
        svc.put_log_events(&PutLogEventsInput {
            log_group_name: "g".into(),
            log_stream_name: "s".into(),
            log_events: events
                .into_iter()
                .map(|(timestamp, message)| InputLogEvent { timestamp, message })
                .collect(),
            sequence_token: None,
        })
    };
    // Refused outright.
    for (events, what) in [
        (vec![], "empty batch"),
        (vec![(now, String::new())], "empty message"),
        (
            vec![(now, "b".into()), (now - 1, "a".into())],
            "out of order",
        ),
        (vec![(now, big.clone())], "event over 256 KiB"),
        (vec![(now, half.clone()); 6], "batch over 1 MiB"),
        (
            (0..10_001).map(|i| (now, format!("{i}"))).collect(),
            "over 10,000 events",
        ),
        (
            vec![(now - 25 * 3_600_000, "a".into()), (now, "b".into())],
            "spans over 24 hours",
        ),
    ] {
        assert_eq!(
            try_put(events).unwrap_err().code(),
            "InvalidParameterException",
            "{what}"
        );
    }
    let e = svc
        .put_log_events(&PutLogEventsInput {
            log_group_name: "g".into(),
            log_stream_name: "nope".into(),
            log_events: vec![InputLogEvent {
                timestamp: now,
                message: "m".into(),
            }],
            sequence_token: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "ResourceNotFoundException");

    // Rejected but the rest stored: too old, expired (retention 1 day), too new.
    svc.put_retention_policy("g", 1).unwrap();
    let out = try_put(vec![
        (now - 15 * day, "too old".into()),
        (now - 2 * day, "expired".into()),
        (now - 1000, "kept 1".into()),
        (now, "kept 2".into()),
        (now + 3 * 3_600_000, "too new".into()),
    ])
    .unwrap();
    let r = out.rejected_log_events_info.unwrap();
    assert_eq!(
        (
            r.too_old_log_event_end_index,
            r.expired_log_event_end_index,
            r.too_new_log_event_start_index
        ),
        (Some(1), Some(2), Some(4))
    );
    assert_eq!(
        out.next_sequence_token.len(),
        56,
        "AWS's tokens are 56 digits"
    );
    let got = get(&svc, "g", "s", |i| i.start_from_head = Some(true));
    assert_eq!(
        messages(got.events.iter().map(|e| &e.message)),
        ["kept 1", "kept 2"]
    );
    // Exactly at the limits is fine.
    let at_limit = "z".repeat(256 * 1024 - 26);
    assert!(
        try_put(vec![(now, at_limit)])
            .unwrap()
            .rejected_log_events_info
            .is_none()
    );
}

#[test]
fn get_log_events_pages_both_ways_to_the_end() {
    let d = tempfile::tempdir().unwrap();
    // Small segments, so pages cross rotated segments.
    let svc = open(
        d.path(),
        LogsOptions {
            max_group_bytes: 1 << 30,
            segment_bytes: 4096,
            ..Default::default()
        },
    );
    svc.create_log_group("g", Tags::new()).unwrap();
    svc.create_log_stream("g", "s").unwrap();
    let now = clock::now_ms();
    let base = now - 100_000;
    let all: Vec<String> = (0..250)
        .map(|i| format!("event {i:03} \"quoted\" \\ tab\t"))
        .collect();
    for chunk in all.chunks(50).enumerate() {
        let (c, msgs) = chunk;
        let events: Vec<(i64, &str)> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (base + (c * 50 + i) as i64, m.as_str()))
            .collect();
        put(&svc, "g", "s", &events);
    }

    // Forward from the head in pages of 40; the end returns the token passed in.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = get(&svc, "g", "s", |i| {
            i.start_from_head = Some(true);
            i.limit = Some(40);
            i.next_token = token.clone();
        });
        pages += 1;
        for e in &out.events {
            assert!(e.ingestion_time >= now);
        }
        got.extend(out.events.into_iter().map(|e| e.message));
        if token.as_deref() == Some(out.next_forward_token.as_str()) {
            break;
        }
        assert!(out.next_forward_token.starts_with("f/"));
        token = Some(out.next_forward_token);
        assert!(pages < 100);
    }
    assert_eq!(got, all);
    // New events appear behind the final forward token.
    put(&svc, "g", "s", &[(now, "late")]);
    let out = get(&svc, "g", "s", |i| i.next_token = token.clone());
    assert_eq!(messages(out.events.iter().map(|e| &e.message)), ["late"]);

    // Backward from the end (the default) in pages of 60, until the token repeats.
    let mut back: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = get(&svc, "g", "s", |i| {
            i.limit = Some(60);
            i.next_token = token.clone();
        });
        let mut page: Vec<String> = out.events.into_iter().map(|e| e.message).collect();
        page.extend(back);
        back = page;
        if token.as_deref() == Some(out.next_backward_token.as_str()) {
            break;
        }
        assert!(out.next_backward_token.starts_with("b/"));
        token = Some(out.next_backward_token);
    }
    let mut want = all.clone();
    want.push("late".into());
    assert_eq!(back, want);

    // A time range: start inclusive, end exclusive.
    let out = get(&svc, "g", "s", |i| {
        i.start_from_head = Some(true);
        i.start_time = Some(base + 10);
        i.end_time = Some(base + 13);
    });
    assert_eq!(
        out.events
            .iter()
            .map(|e| e.timestamp - base)
            .collect::<Vec<_>>(),
        [10, 11, 12]
    );
    // The latest two, and the forward token from there reaches the end.
    let out = get(&svc, "g", "s", |i| i.limit = Some(2));
    assert_eq!(
        messages(out.events.iter().map(|e| &e.message)),
        [all[249].clone(), "late".into()]
    );
    let again = get(&svc, "g", "s", |i| {
        i.next_token = Some(out.next_forward_token.clone())
    });
    assert!(again.events.is_empty());
    assert_eq!(again.next_forward_token, out.next_forward_token);

    for bad in ["x", "f/1", "b/abc"] {
        let e = svc
            .get_log_events(&GetLogEventsInput {
                log_group_name: "g".into(),
                log_stream_name: "s".into(),
                next_token: Some(bad.into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException", "{bad}");
    }
    // An empty stream: no events, stable tokens.
    svc.create_log_stream("g", "empty").unwrap();
    let out = get(&svc, "g", "empty", |i| i.start_from_head = Some(true));
    assert!(out.events.is_empty());
    let again = get(&svc, "g", "empty", |i| {
        i.next_token = Some(out.next_forward_token.clone())
    });
    assert_eq!(again.next_forward_token, out.next_forward_token);
}

#[test]
fn filter_log_events_across_interleaved_streams() {
    let d = tempfile::tempdir().unwrap();
    let svc = open(
        d.path(),
        LogsOptions {
            segment_bytes: 4096,
            ..Default::default()
        },
    );
    svc.create_log_group("g", Tags::new()).unwrap();
    let base = clock::now_ms() - 60_000;
    // Three streams whose events interleave in time.
    let lines: [(&str, &str); 9] = [
        ("a", "[ERROR 400] BAD REQUEST"),
        (
            "b",
            r#"{"level": "ERROR", "latency": 250, "user": {"id": 1}}"#,
        ),
        (
            "c",
            r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#,
        ),
        ("a", "[INFO] all good"),
        (
            "b",
            r#"{"level": "INFO", "latency": 20, "user": {"id": 2}}"#,
        ),
        (
            "c",
            r#"10.0.0.1 - bob [10/Oct/2000:13:25:16 -0700] "GET /a.png HTTP/1.0" 200 99"#,
        ),
        ("a", "[ERROR 500] INTERNAL SERVER ERROR"),
        (
            "b",
            r#"{"level": "ERROR", "latency": 50, "user": {"id": 3}, "tags": ["x"]}"#,
        ),
        (
            "c",
            r#"10.0.0.2 - eve [10/Oct/2000:13:25:17 -0700] "POST /login.html HTTP/1.0" 500 2048"#,
        ),
    ];
    for s in ["a", "b", "c"] {
        svc.create_log_stream("g", s).unwrap();
    }
    for (i, (s, m)) in lines.iter().enumerate() {
        put(&svc, "g", s, &[(base + i as i64, m)]);
    }
    let idx = |out: &stratus_logs::FilterLogEventsOutput| -> Vec<i64> {
        out.events.iter().map(|e| e.timestamp - base).collect()
    };
    for (pattern, want) in [
        ("", vec![0, 1, 2, 3, 4, 5, 6, 7, 8]),
        // A term starts a word: `"ERROR"` inside the JSON counts.
        ("ERROR", vec![0, 1, 6, 7]),
        ("\"INTERNAL SERVER ERROR\"", vec![6]),
        ("?BAD ?good", vec![0, 3]),
        ("-ERROR", vec![2, 3, 4, 5, 8]),
        ("{ $.level = \"ERROR\" }", vec![1, 7]),
        ("{ $.latency > 100 }", vec![1]),
        ("{ $.level = \"ERROR\" && $.latency < 100 }", vec![7]),
        ("{ $.user.id = 2 || $.tags[0] = \"x\" }", vec![4, 7]),
        ("{ $.tags NOT EXISTS }", vec![1, 4]),
        (
            "[ip, user, username, timestamp, request, status_code = 404, bytes]",
            vec![2],
        ),
        ("[ip, ..., status_code >= 400, bytes > 1000]", vec![2, 8]),
        ("[..., request = \"*html*\", status, size]", vec![2, 8]),
    ] {
        let out = filter(&svc, "g", pattern, |_| {});
        assert_eq!(idx(&out), want, "{pattern}");
        assert_eq!(out.next_token, None, "{pattern}");
    }
    // Streams by list and by prefix; both at once is refused.
    let out = filter(&svc, "g", "", |i| {
        i.log_stream_names = Some(vec!["a".into(), "c".into()])
    });
    assert_eq!(idx(&out), [0, 2, 3, 5, 6, 8]);
    assert_eq!(out.events[1].log_stream_name, "c");
    let out = filter(&svc, "g", "", |i| {
        i.log_stream_name_prefix = Some("b".into())
    });
    assert_eq!(idx(&out), [1, 4, 7]);
    let e = svc
        .filter_log_events(&FilterLogEventsInput {
            log_group_name: "g".into(),
            log_stream_names: Some(vec!["a".into()]),
            log_stream_name_prefix: Some("a".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameterException");
    let e = svc
        .filter_log_events(&FilterLogEventsInput {
            log_group_name: "g".into(),
            filter_pattern: Some("{ $.a = ".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameterException");
    // Time range: both ends inclusive.
    let out = filter(&svc, "g", "", |i| {
        i.start_time = Some(base + 2);
        i.end_time = Some(base + 4);
    });
    assert_eq!(idx(&out), [2, 3, 4]);

    // Paging with a small limit visits every event once, in order; event ids are unique.
    let mut seen = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut token = None;
    loop {
        let out = filter(&svc, "g", "", |i| {
            i.limit = Some(2);
            i.next_token = token.clone();
            i.interleaved = Some(true);
        });
        for e in &out.events {
            assert!(ids.insert(e.event_id.clone()));
            assert_eq!(e.event_id.len(), 56);
        }
        seen.extend(idx(&out));
        token = out.next_token;
        if token.is_none() {
            assert!(
                out.searched_log_streams
                    .iter()
                    .all(|s| s.searched_completely)
            );
            break;
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8]);

    // Many events in many segments: a term pattern pages through them all.
    let many: Vec<String> = (0..3000)
        .map(|i| {
            if i % 3 == 0 {
                format!("needle {i}")
            } else {
                format!("hay {i}")
            }
        })
        .collect();
    for (k, chunk) in many.chunks(500).enumerate() {
        let stream = if k % 2 == 0 { "a" } else { "b" };
        let t0 = base + 100 + (k * 500) as i64;
        let events: Vec<(i64, &str)> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| (t0 + i as i64, m.as_str()))
            .collect();
        put(&svc, "g", stream, &events);
    }
    let mut count = 0;
    let mut token = None;
    let mut last = i64::MIN;
    loop {
        let out = filter(&svc, "g", "needle", |i| {
            i.limit = Some(333);
            i.next_token = token.clone();
        });
        for e in &out.events {
            assert!(e.message.starts_with("needle") && e.timestamp >= last);
            last = e.timestamp;
        }
        count += out.events.len();
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(count, 1000);
}

#[test]
fn retention_sweep_deletes_expired_segments_and_streams() {
    let d = tempfile::tempdir().unwrap();
    let svc = open(
        d.path(),
        LogsOptions {
            segment_bytes: 4096,
            ..Default::default()
        },
    );
    svc.create_log_group("g", Tags::new()).unwrap();
    svc.create_log_group("keep", Tags::new()).unwrap();
    svc.put_retention_policy("g", 1).unwrap();
    for (g, s) in [("g", "s"), ("g", "t"), ("keep", "s")] {
        svc.create_log_stream(g, s).unwrap();
    }
    let now = clock::now_ms();
    let msgs: Vec<String> = (0..200).map(|i| format!("message number {i}")).collect();
    let refs: Vec<(i64, &str)> = msgs.iter().map(|m| (now, m.as_str())).collect();
    for batch in refs.chunks(50) {
        put(&svc, "g", "s", batch);
    }
    put(&svc, "keep", "s", &refs);
    // Within retention: nothing goes.
    assert_eq!(svc.sweep(now + 1000).unwrap(), Default::default());
    // Two days on: g's events and streams expire; the group without retention keeps all.
    let stats = svc.sweep(now + 2 * 86_400_000).unwrap();
    assert!(
        stats.segments_deleted >= 2 && stats.bytes_freed > 0,
        "{stats:?}"
    );
    assert_eq!(stats.streams_deleted, 2);
    let groups = svc
        .describe_log_groups(&DescribeLogGroupsInput::default())
        .unwrap()
        .items;
    let stored: Vec<(String, u64)> = groups
        .into_iter()
        .map(|g| (g.log_group_name, g.stored_bytes))
        .collect();
    assert_eq!(stored[0], ("g".into(), 0));
    assert!(stored[1].1 > 0);
    assert!(
        svc.describe_log_streams(&DescribeLogStreamsInput {
            log_group_name: "g".into(),
            ..Default::default()
        })
        .unwrap()
        .items
        .is_empty()
    );
    assert_eq!(
        get(&svc, "keep", "s", |i| i.start_from_head = Some(true))
            .events
            .len(),
        200
    );
    // The files are gone too.
    let left: Vec<_> = std::fs::read_dir(d.path().join("logs/g"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["group.json"]);
}

#[test]
fn a_flooding_writer_stays_within_the_cap() {
    let d = tempfile::tempdir().unwrap();
    let cap = 256 << 10;
    let svc = open(
        d.path(),
        LogsOptions {
            max_group_bytes: cap,
            writer_buffer_bytes: 8 << 10,
            ..Default::default()
        },
    );
    let mut w = LogSink::open(&svc, "/aws/lambda/flood", "2024/01/01/[$LATEST]abc").unwrap();
    let line = "x".repeat(100);
    let total = 50_000;
    let t0 = clock::now_ms();
    for i in 0..total {
        w.write(t0, &format!("{i:06} {line}"));
        if i % 1000 == 999 {
            w.flush();
        }
    }
    w.write(t0, "the last line");
    drop(w);
    let group = &svc
        .describe_log_groups(&DescribeLogGroupsInput::default())
        .unwrap()
        .items[0];
    assert_eq!(group.log_group_name, "/aws/lambda/flood");
    assert!(group.stored_bytes <= cap, "{} > {cap}", group.stored_bytes);
    assert!(
        group.stored_bytes >= cap / 2,
        "kept too little: {}",
        group.stored_bytes
    );
    let on_disk: u64 = std::fs::read_dir(d.path().join("logs/%2Faws%2Flambda%2Fflood"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".jsonl"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= cap);
    // The newest lines are kept, the oldest dropped.
    let stream = "2024/01/01/[$LATEST]abc";
    let latest = get(&svc, "/aws/lambda/flood", stream, |i| i.limit = Some(1));
    assert_eq!(latest.events[0].message, "the last line");
    let oldest = get(&svc, "/aws/lambda/flood", stream, |i| {
        i.start_from_head = Some(true);
        i.limit = Some(1);
    });
    assert!(!oldest.events[0].message.starts_with("000000"));
}

#[test]
fn writers_are_seen_after_flush_and_read_like_the_api() {
    let d = tempfile::tempdir().unwrap();
    let svc = open(d.path(), LogsOptions::default());
    let group = "/aws/lambda/f";
    let stream = "2024/01/01/[$LATEST]0123456789abcdef";
    let mut w = svc.open(group, stream).unwrap();
    let now = clock::now_ms();
    w.write(now, "START RequestId: 1 Version: $LATEST");
    w.write(now, "hello \"world\"\twith tab");
    // Buffered: nothing before the flush.
    assert!(
        get(&svc, group, stream, |i| i.start_from_head = Some(true))
            .events
            .is_empty()
    );
    w.flush();
    w.write(now + 1, "END RequestId: 1");
    w.write(now + 1, "REPORT RequestId: 1 Duration: 1.00 ms");
    drop(w); // Dropping flushes.
    let got = get(&svc, group, stream, |i| i.start_from_head = Some(true));
    assert_eq!(
        messages(got.events.iter().map(|e| &e.message)),
        [
            "START RequestId: 1 Version: $LATEST",
            "hello \"world\"\twith tab",
            "END RequestId: 1",
            "REPORT RequestId: 1 Duration: 1.00 ms"
        ]
    );
    let out = filter(&svc, group, "REPORT", |_| {});
    assert_eq!(out.events.len(), 1);
    // The implicit group and stream are listed like created ones.
    let groups = svc
        .describe_log_groups(&DescribeLogGroupsInput::default())
        .unwrap()
        .items;
    assert_eq!(groups[0].log_group_name, group);
    let streams = svc
        .describe_log_streams(&DescribeLogStreamsInput {
            log_group_name: group.into(),
            ..Default::default()
        })
        .unwrap()
        .items;
    assert_eq!(streams[0].log_stream_name, stream);
    assert_eq!(
        svc.create_log_group(group, Tags::new()).unwrap_err().code(),
        "ResourceAlreadyExistsException"
    );
    // Where the end-to-end helpers look: JSON lines with timestamp and message.
    let path = d
        .path()
        .join("logs/%2Faws%2Flambda%2Ff/2024%2F01%2F01%2F[$LATEST]0123456789abcdef.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["message"], "START RequestId: 1 Version: $LATEST");
    assert_eq!(first["timestamp"], now);
    // A writer whose group was deleted under it brings it back.
    let mut w = svc.open(group, stream).unwrap();
    svc.delete_log_group(group).unwrap();
    w.write(now + 2, "after delete");
    w.flush();
    let got = get(&svc, group, stream, |_| {});
    assert_eq!(
        messages(got.events.iter().map(|e| &e.message)),
        ["after delete"]
    );
    // Names the API would refuse are refused here too.
    assert!(svc.open("bad group", "s").is_err());
}

#[test]
fn a_restart_keeps_everything() {
    let d = tempfile::tempdir().unwrap();
    let options = LogsOptions {
        segment_bytes: 4096,
        ..Default::default()
    };
    let now = clock::now_ms();
    let mut tags = Tags::new();
    tags.insert("k".into(), "v".into());
    let long_stream = "s/".repeat(200);
    let msgs: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    let (group_created, stream_created) = {
        let svc = open(d.path(), options.clone());
        svc.create_log_group("/g", tags.clone()).unwrap();
        svc.put_retention_policy("/g", 30).unwrap();
        svc.create_log_stream("/g", &long_stream).unwrap();
        let refs: Vec<(i64, &str)> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (now - 1000 + i as i64, m.as_str()))
            .collect();
        put(&svc, "/g", &long_stream, &refs);
        let mut w = svc.open("/aws/lambda/f", "w").unwrap();
        w.write(now, "from a writer");
        drop(w);
        let g = svc
            .describe_log_groups(&DescribeLogGroupsInput::default())
            .unwrap()
            .items;
        let s = svc
            .describe_log_streams(&DescribeLogStreamsInput {
                log_group_name: "/g".into(),
                ..Default::default()
            })
            .unwrap()
            .items;
        (g, s)
    };
    let svc = open(d.path(), options);
    let groups = svc
        .describe_log_groups(&DescribeLogGroupsInput::default())
        .unwrap()
        .items;
    assert_eq!(groups, group_created);
    assert_eq!(groups[1].retention_in_days, Some(30));
    assert_eq!(svc.list_tags_log_group("/g").unwrap(), tags);
    let streams = svc
        .describe_log_streams(&DescribeLogStreamsInput {
            log_group_name: "/g".into(),
            ..Default::default()
        })
        .unwrap()
        .items;
    assert_eq!(streams.len(), 1);
    let (before, after) = (&stream_created[0], &streams[0]);
    assert_eq!(after.log_stream_name, long_stream);
    assert_eq!(
        (
            after.first_event_timestamp,
            after.last_event_timestamp,
            after.last_ingestion_time,
            after.stored_bytes
        ),
        (
            before.first_event_timestamp,
            before.last_event_timestamp,
            before.last_ingestion_time,
            before.stored_bytes
        )
    );
    let got = get(&svc, "/g", &long_stream, |i| i.start_from_head = Some(true));
    assert_eq!(messages(got.events.iter().map(|e| &e.message)), msgs);
    let got = get(&svc, "/aws/lambda/f", "w", |_| {});
    assert_eq!(got.events[0].message, "from a writer");
    // Appends continue after the restart.
    put(&svc, "/g", &long_stream, &[(now, "after restart")]);
    let got = get(&svc, "/g", &long_stream, |i| i.limit = Some(1));
    assert_eq!(got.events[0].message, "after restart");
}

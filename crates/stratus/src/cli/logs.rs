//! `stratus logs`: a function's log events (group `/aws/lambda/<function>`) through
//! CloudWatch Logs' `FilterLogEvents`, one line each (time, stream, message); `--follow`
//! keeps polling for new ones.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use stratus_sigv4::uri_encode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::client::{CliError, Client, ClientArgs, Request, out};

/// How often `--follow` asks for new events.
const POLL: Duration = Duration::from_secs(1);
/// `--follow` asks again from this long before the newest event it has seen, because
/// events of concurrent environments can arrive slightly out of timestamp order; event ids
/// keep the overlap from printing twice.
const LOOKBACK_MS: i64 = 2_000;

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Function name or ARN.
    pub function: String,
    /// Keep printing new events as they arrive, until interrupted (Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Only events since a time: a duration back from now (`30s`, `10m`, `1h`, `2d`, `1w`)
    /// or an RFC 3339 time (`2025-01-31T12:00:00Z`) [default: the oldest event kept].
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Since>,
    /// A CloudWatch Logs filter pattern: terms (`ERROR`), `"quoted phrases"`, `?a ?b`,
    /// `-term`, or JSON `{ $.level = "error" }`.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The start of the window `--since` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    /// Milliseconds since the epoch.
    At(i64),
}

impl Since {
    /// Milliseconds since the epoch, given `now` in the same unit.
    pub fn start_ms(self, now_ms: i64) -> i64 {
        match self {
            Since::Ago(d) => {
                now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
            Since::At(ms) => ms,
        }
    }
}

/// `30s`, `10m`, `1h`, `2d`, `1w` (a whole number and a unit), or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<Since, String> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        return i64::try_from(ms)
            .map(Since::At)
            .map_err(|_| format!("{s} is out of range"));
    }
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit: s, m, h, d or w (e.g. 10m)"))?;
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().map_err(|_| {
        format!("expected a duration like 10m or 1h, or an RFC 3339 time, not {s:?}")
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(format!(
                "expected a duration like 10m or 1h (units s, m, h, d, w), or an RFC 3339 time, not {s:?}"
            ));
        }
    };
    n.checked_mul(secs)
        .map(|secs| Since::Ago(Duration::from_secs(secs)))
        .ok_or_else(|| format!("{s} is too long"))
}

/// One event as `FilterLogEvents` returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub log_stream_name: String,
    pub timestamp: i64,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    events: Vec<Event>,
    next_token: Option<String>,
}

/// `2025-01-31T12:00:00.123Z 1a2b3c4d message`: the time in UTC, the first eight characters
/// of the environment's id in the stream name (`2025/01/31/[$LATEST]<id>`), the message.
pub fn format_event(e: &Event) -> String {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.timestamp) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| e.timestamp.to_string());
    format!(
        "{time} {} {}",
        short_stream(&e.log_stream_name),
        e.message.trim_end_matches(['\n', '\r'])
    )
}

pub fn short_stream(name: &str) -> &str {
    let id = name.rsplit_once(']').map_or(name, |(_, id)| id);
    let id = if id.is_empty() { name } else { id };
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}

/// The function's name from a name or an ARN (`arn:aws:lambda:r:a:function:name[:q]`).
pub fn function_name(function: &str) -> &str {
    if function.starts_with("arn:") {
        function.split(':').nth(6).unwrap_or(function)
    } else {
        // `name:qualifier` names the same function (and log group).
        function.split(':').next().unwrap_or(function)
    }
}

/// The events `--follow` has printed recently, so a poll that overlaps the previous one
/// prints each event once.
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashMap<String, i64>,
    newest: Option<i64>,
}

impl Seen {
    /// True the first time an event is offered.
    pub fn first_time(&mut self, e: &Event) -> bool {
        if self.ids.contains_key(&e.event_id) {
            return false;
        }
        self.ids.insert(e.event_id.clone(), e.timestamp);
        self.newest = Some(self.newest.map_or(e.timestamp, |n| n.max(e.timestamp)));
        true
    }

    /// Where the next poll starts (`None`: where the first one did), forgetting events
    /// before it.
    pub fn next_start(&mut self) -> Option<i64> {
        let start = self.newest?.saturating_sub(LOOKBACK_MS);
        self.ids.retain(|_, ts| *ts >= start);
        Some(start)
    }
}

/// The entry point `main` calls: the process's exit status.
pub fn main(args: LogsArgs) -> i32 {
    super::client::run(logs(args))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn logs(args: LogsArgs) -> Result<i32, CliError> {
    let client = Client::from_args(&args.client)?;
    let name = function_name(&args.function).to_owned();
    let group = format!("/aws/lambda/{name}");
    let first_start = args.since.map(|s| s.start_ms(now_ms()));
    let mut seen = Seen::default();
    let mut told_waiting = false;
    loop {
        let start = seen.next_start().or(first_start);
        match fetch(&client, &group, start, args.filter.as_deref(), &mut seen).await {
            Ok(()) => {}
            Err(e) if e.aws_code() == Some("ResourceNotFoundException") => {
                // No group: the function never ran (or does not exist; say which).
                ensure_function_exists(&client, &name).await?;
                if !args.follow {
                    eprintln!("no logs yet for function {name}");
                    return Ok(0);
                }
                if !told_waiting {
                    eprintln!("no logs yet for function {name}; waiting for some…");
                    told_waiting = true;
                }
            }
            Err(e) => return Err(e),
        }
        if !args.follow {
            return Ok(0);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every page of events from `start`, printing those not seen before.
async fn fetch(
    client: &Client,
    group: &str,
    start: Option<i64>,
    filter: Option<&str>,
    seen: &mut Seen,
) -> Result<(), CliError> {
    let mut token: Option<String> = None;
    loop {
        let mut body = serde_json::json!({ "logGroupName": group });
        if let Some(s) = start {
            body["startTime"] = s.into();
        }
        if let Some(f) = filter {
            body["filterPattern"] = f.into();
        }
        if let Some(t) = &token {
            body["nextToken"] = t.as_str().into();
        }
        let resp = client.call(&filter_request(&body)).await?;
        let page: Page = serde_json::from_slice(&resp.body).map_err(|e| CliError::Transport {
            url: client.target.endpoint.url.clone(),
            reason: format!("FilterLogEvents answered something unexpected: {e}"),
        })?;
        let mut text = String::new();
        for e in page.events.iter().filter(|e| seen.first_time(e)) {
            text.push_str(&format_event(e));
            text.push('\n');
        }
        out(&text)?;
        match page.next_token {
            // A token that does not move would loop forever.
            Some(t) if token.as_ref() != Some(&t) => token = Some(t),
            _ => return Ok(()),
        }
    }
}

fn filter_request(body: &serde_json::Value) -> Request {
    Request {
        method: "POST",
        path: "/".into(),
        query: String::new(),
        headers: vec![
            ("content-type", "application/x-amz-json-1.1".into()),
            ("x-amz-target", "Logs_20140328.FilterLogEvents".into()),
        ],
        body: body.to_string().into_bytes(),
        service: "logs",
    }
}

/// Lambda's `GetFunction`: Ok if the function exists, its ResourceNotFoundException if not.
async fn ensure_function_exists(client: &Client, name: &str) -> Result<(), CliError> {
    client
        .call(&Request {
            method: "GET",
            path: format!(
                "/2015-03-31/functions/{}",
                uri_encode(name.as_bytes(), false)
            ),
            query: String::new(),
            headers: vec![],
            body: vec![],
            service: "lambda",
        })
        .await
        .map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_rfc3339_times() {
        let table = [
            ("30s", Since::Ago(Duration::from_secs(30))),
            ("10m", Since::Ago(Duration::from_secs(600))),
            ("1h", Since::Ago(Duration::from_secs(3600))),
            ("2d", Since::Ago(Duration::from_secs(2 * 86_400))),
            ("1w", Since::Ago(Duration::from_secs(604_800))),
            ("2025-01-31T12:00:00Z", Since::At(1_738_324_800_000)),
            (
                "2025-01-31T13:00:00.250+01:00",
                Since::At(1_738_324_800_250),
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_since(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "10",
            "m",
            "10y",
            "-5m",
            "1.5h",
            "2025-01-31",
            "99999999999999999999w",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Since::Ago(Duration::from_secs(60)).start_ms(100_000),
            40_000
        );
        assert_eq!(Since::At(5).start_ms(100_000), 5);
    }

    #[test]
    fn events_print_as_time_short_stream_and_message() {
        let e = Event {
            event_id: "1".into(),
            log_stream_name: "2025/01/31/[$LATEST]0123456789abcdef0123456789abcdef".into(),
            timestamp: 1_738_324_800_007,
            message: "hello\n".into(),
        };
        assert_eq!(format_event(&e), "2025-01-31T12:00:00.007Z 01234567 hello");
        assert_eq!(short_stream("plain"), "plain");
        assert_eq!(short_stream("odd]"), "odd]");
        assert_eq!(short_stream("[1]abc"), "abc");
    }

    #[test]
    fn function_names_come_from_names_and_arns() {
        assert_eq!(function_name("f"), "f");
        assert_eq!(function_name("f:live"), "f");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:000000000000:function:f:3"),
            "f"
        );
    }

    #[test]
    fn following_prints_each_event_once_and_moves_its_window() {
        let ev = |id: &str, ts| Event {
            event_id: id.into(),
            log_stream_name: "s".into(),
            timestamp: ts,
            message: String::new(),
        };
        let mut seen = Seen::default();
        assert_eq!(seen.next_start(), None);
        assert!(seen.first_time(&ev("a", 1_000)));
        assert!(seen.first_time(&ev("b", 10_000)));
        assert_eq!(seen.next_start(), Some(10_000 - LOOKBACK_MS));
        // The overlap comes back: only the new event is first seen.
        assert!(!seen.first_time(&ev("b", 10_000)));
        assert!(seen.first_time(&ev("c", 9_500)));
        assert!(seen.first_time(&ev("d", 10_000)));
        // Events before the window are forgotten, so the set stays small.
        assert_eq!(seen.next_start(), Some(8_000));
        assert_eq!(seen.ids.len(), 3);
    }
}

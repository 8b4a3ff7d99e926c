//! `stratus usage`: per-function usage from a running server's `GET /_stratus/usage`, as a
//! table or (`--json`) the server's JSON. The server, region and credentials are found as
//! for every `stratus` client command (`cli/client.rs`); the request is signed for service
//! `stratus` and needs the root key.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::cli::client::{self, CliError, Client, ClientArgs, Request};

#[derive(clap::Args)]
pub struct UsageArgs {
    /// Only invocations since this time: RFC 3339, milliseconds since the epoch, or an age
    /// such as 30m, 6h, 7d [default: everything kept].
    #[arg(long)]
    since: Option<String>,
    /// Only this function.
    #[arg(long)]
    function: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs the command; returns the process's exit code.
pub fn run(args: UsageArgs) -> i32 {
    client::run(async move {
        let client = Client::from_args(&args.client)?;
        let mut query = Vec::new();
        if let Some(since) = &args.since {
            let since = since_param(since, SystemTime::now())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            query.push(format!(
                "since={}",
                stratus_sigv4::uri_encode(since.as_bytes(), false)
            ));
        }
        if let Some(f) = &args.function {
            query.push(format!(
                "function={}",
                stratus_sigv4::uri_encode(f.as_bytes(), false)
            ));
        }
        let resp = client
            .call(&Request {
                method: "GET",
                path: crate::surfaces::USAGE_PATH.into(),
                query: query.join("&"),
                headers: Vec::new(),
                body: Vec::new(),
                service: crate::surfaces::SIGNING_NAME,
            })
            .await?;
        let report: Value =
            serde_json::from_slice(&resp.body).map_err(|e| CliError::Transport {
                url: client.target.endpoint.url.clone(),
                reason: format!("the usage report is not JSON: {e}"),
            })?;
        let text = if args.json {
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
        } else {
            table(&report)
        };
        client::out(&text)?;
        Ok(0)
    })
}

/// The `since` parameter: RFC 3339 and epoch milliseconds go as they are; an age (`90s`,
/// `30m`, `6h`, `7d`) becomes epoch milliseconds.
fn since_param(s: &str, now: SystemTime) -> Result<String, String> {
    let s = s.trim();
    let unit = match s.chars().last() {
        Some('s') => Some(1),
        Some('m') => Some(60),
        Some('h') => Some(3600),
        Some('d') => Some(86_400),
        _ => None,
    };
    if let Some(unit) = unit
        && let Ok(n) = s[..s.len() - 1].parse::<u64>()
    {
        let ago = now
            .checked_sub(Duration::from_secs(n.saturating_mul(unit)))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let ms = ago
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        return Ok(ms.to_string());
    }
    if crate::surfaces::parse_time(s).is_err() {
        return Err(format!(
            "--since must be an RFC 3339 time, milliseconds since the epoch, or an age like 30m, 6h, 7d; not {s:?}"
        ));
    }
    Ok(s.to_owned())
}

/// The report as a table, one line per function and a total.
fn table(report: &Value) -> String {
    let empty = Vec::new();
    let functions = report["functions"].as_array().unwrap_or(&empty);
    let mut out = String::new();
    let since = report["since_ms"].as_i64().unwrap_or(0);
    out.push_str(&format!(
        "Usage since {} (estimate at ${} per 1M requests and ${} per GB-second; no free tier)\n",
        if since == 0 {
            "the oldest record kept".into()
        } else {
            stratus_aws::clock::iso8601(since)
        },
        report["prices"]["per_million_requests"],
        report["prices"]["per_gb_second"],
    ));
    if functions.is_empty() {
        out.push_str("No invocations.\n");
        return out;
    }
    let header = [
        "FUNCTION",
        "INVOCATIONS",
        "ERRORS",
        "THROTTLES",
        "COLD STARTS",
        "GB-SECONDS",
        "P50 MS",
        "P99 MS",
        "EST. USD",
    ];
    let ms = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.1}"));
    let mut rows: Vec<[String; 9]> = functions
        .iter()
        .map(|f| {
            [
                f["function"].as_str().unwrap_or("?").to_owned(),
                f["invocations"].to_string(),
                f["errors"].to_string(),
                f["throttles"].to_string(),
                f["cold_starts"].to_string(),
                format!("{:.3}", f["gb_seconds"].as_f64().unwrap_or(0.0)),
                ms(&f["duration_p50_ms"]),
                ms(&f["duration_p99_ms"]),
                format!("{:.6}", f["estimated_cost_usd"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    let sum = |k: &str| {
        functions
            .iter()
            .map(|f| f[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let sumf = |k: &str| {
        functions
            .iter()
            .map(|f| f[k].as_f64().unwrap_or(0.0))
            .sum::<f64>()
    };
    if functions.len() > 1 {
        rows.push([
            "TOTAL".into(),
            sum("invocations").to_string(),
            sum("errors").to_string(),
            sum("throttles").to_string(),
            sum("cold_starts").to_string(),
            format!("{:.3}", sumf("gb_seconds")),
            "-".into(),
            "-".into(),
            format!("{:.6}", sumf("estimated_cost_usd")),
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                l.push_str(&format!("{c:<w$}"));
            } else {
                l.push_str(&format!("  {c:>w$}"));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if let Some(d) = report["dropped_records"].as_u64().filter(|d| *d > 0) {
        out.push_str(&format!(
            "({d} records were dropped under load: usage may be short)\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ages_become_epoch_milliseconds_and_times_pass_through() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(since_param("1h", now).unwrap(), "6400000");
        assert_eq!(since_param("90s", now).unwrap(), "9910000");
        assert_eq!(since_param("123", now).unwrap(), "123");
        assert!(since_param("2025-01-01T00:00:00Z", now).is_ok());
        assert!(since_param("last week", now).is_err());
    }

    #[test]
    fn the_table_has_a_line_per_function_and_a_total() {
        let report = serde_json::json!({
            "since_ms": 0,
            "prices": {"per_million_requests": 0.2, "per_gb_second": 0.0000166667},
            "functions": [
                {"function": "a", "invocations": 3, "errors": 1, "throttles": 0, "cold_starts": 1,
                 "gb_seconds": 0.5, "duration_p50_ms": 200.25, "duration_p99_ms": 500.0,
                 "estimated_cost_usd": 0.0000089},
                {"function": "bb", "invocations": 0, "errors": 0, "throttles": 2, "cold_starts": 0,
                 "gb_seconds": 0.0, "duration_p50_ms": null, "duration_p99_ms": null,
                 "estimated_cost_usd": 0.0}
            ],
            "dropped_records": 0
        });
        let t = table(&report);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[1].starts_with("FUNCTION"));
        assert!(
            lines[2].starts_with("a ") && lines[2].contains("200.2"),
            "{t}"
        );
        assert!(lines[3].starts_with("bb") && lines[3].contains('-'));
        assert!(lines[4].starts_with("TOTAL"));
    }
}

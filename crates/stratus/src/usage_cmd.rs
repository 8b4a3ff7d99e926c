//! `stratus usage`: per-function usage from a running server's `GET /_stratus/usage`, as a
//! table or (`--json`) the server's JSON.
//!
//! The endpoint is `--endpoint-url`, else `AWS_ENDPOINT_URL`, else http://127.0.0.1:4566. The
//! request is signed (SigV4, service `stratus`) with the AWS environment variables' key, else
//! profile `default` of the shared credentials file, else the server's own root key in its
//! data directory. The region comes from the server's `/_stratus/health`. A minimal HTTP/1.1
//! client of its own: this is a stopgap until the CLI's shared client plumbing lands.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::credentials::{self, Credentials};

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
    /// The server's URL [default: $AWS_ENDPOINT_URL, else http://127.0.0.1:4566].
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The server's data directory, whose root key is used when no AWS credentials are set.
    #[arg(long, env = "STRATUS_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub fn run(args: UsageArgs) -> anyhow::Result<()> {
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| {
            std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "http://127.0.0.1:4566".into());
    let (host, port) = parse_endpoint(&endpoint)?;
    let health = get(&host, port, "/_stratus/health", &[]).map_err(|e| {
        anyhow::anyhow!(
            "no Stratus server answers at {endpoint} ({e}); start one with `stratus server`"
        )
    })?;
    let region = serde_json::from_slice::<Value>(&health.1)
        .ok()
        .and_then(|v| v["region"].as_str().map(str::to_owned))
        .context("the server's /_stratus/health does not name its region: is it Stratus?")?;
    let creds = find_credentials(args.data_dir.clone())?;

    let mut query = Vec::new();
    if let Some(since) = &args.since {
        query.push(format!(
            "since={}",
            encode(&since_param(since, SystemTime::now())?)
        ));
    }
    if let Some(f) = &args.function {
        query.push(format!("function={}", encode(f)));
    }
    let query = query.join("&");
    let host_header = format!("{host}:{port}");
    let headers: Vec<(&str, &[u8])> = vec![("host", host_header.as_bytes())];
    let signed = stratus_sigv4::sign(
        &stratus_sigv4::SignedRequest {
            method: "GET",
            raw_path: crate::surfaces::USAGE_PATH,
            raw_query: &query,
            headers: &headers,
            body: b"",
        },
        &stratus_sigv4::SigningParams {
            access_key_id: &creds.access_key_id,
            secret_access_key: &creds.secret_access_key,
            region: &region,
            service: crate::surfaces::SIGNING_NAME,
            time: SystemTime::now(),
        },
        &stratus_sigv4::VerifyOptions::default(),
    );
    let path = if query.is_empty() {
        crate::surfaces::USAGE_PATH.to_owned()
    } else {
        format!("{}?{query}", crate::surfaces::USAGE_PATH)
    };
    let extra: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) =
        get(&host, port, &path, &extra).with_context(|| format!("asking {endpoint} for usage"))?;
    let report: Value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "the server answered {status} with: {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    if status != 200 {
        bail!(
            "the server refused: {} ({status}): {}",
            report["Type"]
                .as_str()
                .or(report["__type"].as_str())
                .unwrap_or("error"),
            report["message"].as_str().unwrap_or("")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn find_credentials(data_dir: Option<PathBuf>) -> anyhow::Result<Credentials> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials {
            access_key_id,
            secret_access_key,
        });
    }
    let shared = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
    if let Some(path) = shared
        && let Some(c) =
            credentials::read(&path).with_context(|| format!("reading {}", path.display()))?
    {
        return Ok(c);
    }
    let dir = data_dir.unwrap_or_else(crate::config::default_data_dir);
    let path = credentials::credentials_path(&dir);
    credentials::read(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .with_context(|| {
            format!(
                "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or point \
                 AWS_SHARED_CREDENTIALS_FILE or --data-dir at the server's ({} has none)",
                path.display()
            )
        })
}

/// `host` and `port` of an `http://host[:port][/]` URL.
fn parse_endpoint(url: &str) -> anyhow::Result<(String, u16)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("the endpoint must be an http:// URL, not {url:?}");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.to_owned(),
            p.parse()
                .with_context(|| format!("the endpoint's port in {url:?}"))?,
        ),
        _ => (authority.to_owned(), 80),
    };
    if host.is_empty() {
        bail!("the endpoint {url:?} names no host");
    }
    Ok((host, port))
}

/// The `since` parameter: RFC 3339 and epoch milliseconds go as they are; an age (`90s`,
/// `30m`, `6h`, `7d`) becomes epoch milliseconds.
fn since_param(s: &str, now: SystemTime) -> anyhow::Result<String> {
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
        bail!(
            "--since must be an RFC 3339 time, milliseconds since the epoch, or an age like 30m, 6h, 7d; not {s:?}"
        );
    }
    Ok(s.to_owned())
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SIGV4_QUERY).to_string()
}

/// Everything but SigV4's unreserved characters, so the query is already canonical.
const SIGV4_QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One `GET` over HTTP/1.1: the status and the body.
fn get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let addr = (host, port);
    let mut stream = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
        .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
        .context("connection refused")?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the server's answer is not HTTP")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("the server's answer has no status")?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let (mut out, mut rest) = (Vec::new(), body);
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk without its size")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("a chunk size that is not hex")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        out.extend_from_slice(rest.get(..size).context("a chunk cut short")?);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
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
    fn endpoints_ages_and_responses_parse() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:4566").unwrap(),
            ("127.0.0.1".into(), 4566)
        );
        assert_eq!(
            parse_endpoint("http://localhost/").unwrap(),
            ("localhost".into(), 80)
        );
        assert!(parse_endpoint("https://x").is_err());
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(since_param("1h", now).unwrap(), "6400000");
        assert_eq!(since_param("90s", now).unwrap(), "9910000");
        assert_eq!(since_param("123", now).unwrap(), "123");
        assert!(since_param("2025-01-01T00:00:00Z", now).is_ok());
        assert!(since_param("last week", now).is_err());
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, b"abcde".to_vec()));
        let plain = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (403, b"{}".to_vec()));
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

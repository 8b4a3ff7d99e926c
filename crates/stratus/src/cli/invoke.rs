//! `stratus invoke`: runs a function and prints its result on standard output, its REPORT
//! line on standard error; exits 1 when the function failed, 2 when the request did.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use stratus_sigv4::uri_encode;

use super::client::{CliError, Client, ClientArgs, Request, Response, out};

/// How long an invocation may take before a person at a terminal is told it is still going.
const PATIENCE: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug)]
pub struct InvokeArgs {
    /// Function name or ARN.
    pub function: String,
    /// The event as JSON text, or `-` to read it from standard input [default: {}].
    #[arg(conflicts_with = "payload_file")]
    pub payload: Option<String>,
    /// Read the event from a file (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// Version or alias to invoke.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// Queue the event and return at once (invocation type Event); the function's output
    /// goes to its logs (`stratus logs`).
    #[arg(long = "async")]
    pub asynchronous: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where the event comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum PayloadSource {
    Default,
    Inline(String),
    Stdin,
    File(PathBuf),
}

impl InvokeArgs {
    pub fn payload_source(&self) -> PayloadSource {
        match (&self.payload, &self.payload_file) {
            (Some(p), _) if p == "-" => PayloadSource::Stdin,
            (Some(p), _) => PayloadSource::Inline(p.clone()),
            (None, Some(f)) if f.as_os_str() == "-" => PayloadSource::Stdin,
            (None, Some(f)) => PayloadSource::File(f.clone()),
            (None, None) => PayloadSource::Default,
        }
    }
}

fn read_payload(source: PayloadSource) -> Result<Vec<u8>, CliError> {
    match source {
        PayloadSource::Default => Ok(b"{}".to_vec()),
        PayloadSource::Inline(text) => Ok(text.into_bytes()),
        PayloadSource::Stdin => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|source| CliError::Io {
                    what: "reading the payload from standard input".into(),
                    source,
                })?;
            Ok(buf)
        }
        PayloadSource::File(path) => std::fs::read(&path).map_err(|source| CliError::Io {
            what: format!("reading the payload from {}", path.display()),
            source,
        }),
    }
}

/// The entry point `main` calls: the process's exit status.
pub fn main(args: InvokeArgs) -> i32 {
    super::client::run(invoke(args))
}

async fn invoke(args: InvokeArgs) -> Result<i32, CliError> {
    let client = Client::from_args(&args.client)?;
    let payload = read_payload(args.payload_source())?;
    let req = request(&args, payload);
    let pending = client.call(&req);
    let resp = if args.asynchronous || !std::io::stderr().is_terminal() {
        pending.await?
    } else {
        tokio::pin!(pending);
        tokio::select! {
            r = &mut pending => r?,
            () = tokio::time::sleep(PATIENCE) => {
                eprintln!("waiting for {}…", args.function);
                pending.await?
            }
        }
    };
    if args.asynchronous {
        let id = resp.header("x-amzn-requestid").unwrap_or("?");
        eprintln!(
            "queued: {} runs asynchronously (request id {id}); see `stratus logs {}`",
            args.function, args.function
        );
        return Ok(0);
    }
    report(&args.function, &resp)
}

/// `POST /2015-03-31/functions/{name}/invocations`.
pub fn request(args: &InvokeArgs, payload: Vec<u8>) -> Request {
    let invocation_type = if args.asynchronous {
        "Event"
    } else {
        "RequestResponse"
    };
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-amz-invocation-type", invocation_type.to_owned()),
    ];
    if !args.asynchronous {
        headers.push(("x-amz-log-type", "Tail".to_owned()));
    }
    Request {
        method: "POST",
        path: format!(
            "/2015-03-31/functions/{}/invocations",
            uri_encode(args.function.as_bytes(), false)
        ),
        query: args
            .qualifier
            .as_ref()
            .map(|q| format!("Qualifier={}", uri_encode(q.as_bytes(), false)))
            .unwrap_or_default(),
        headers,
        body: payload,
        service: "lambda",
    }
}

/// Prints a synchronous invocation's answer; the exit status: 0, or 1 if the function failed.
fn report(function: &str, resp: &Response) -> Result<i32, CliError> {
    let log = resp
        .header("x-amz-log-result")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let report_line = report_line(&log);
    match resp.header("x-amz-function-error") {
        None => {
            let mut text = match pretty_json(&resp.body) {
                Some(pretty) => pretty,
                None => String::from_utf8_lossy(&resp.body).into_owned(),
            };
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            out(&text)?;
            if let Some(line) = report_line {
                eprintln!("{line}");
            }
            Ok(0)
        }
        Some(kind) => {
            if let Some(line) = report_line {
                eprintln!("{line}");
            }
            eprintln!("{}", function_error(function, kind, &resp.body));
            Ok(1)
        }
    }
}

/// The last `REPORT RequestId: ...` line of a log tail.
pub fn report_line(log: &str) -> Option<&str> {
    log.lines().rev().find(|l| l.starts_with("REPORT "))
}

/// What to tell a person whose function failed: its error type and message (and the stack
/// trace, when the runtime sent one), from Lambda's error payload.
pub fn function_error(function: &str, kind: &str, body: &[u8]) -> String {
    let doc: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        doc.as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let mut text = match (field("errorType"), field("errorMessage")) {
        (Some(t), Some(m)) => format!("error: {function} failed ({kind}): {t}: {m}"),
        (Some(t), None) => format!("error: {function} failed ({kind}): {t}"),
        (None, Some(m)) => format!("error: {function} failed ({kind}): {m}"),
        (None, None) => format!(
            "error: {function} failed ({kind}): {}",
            String::from_utf8_lossy(body).trim()
        ),
    };
    let trace = doc
        .as_ref()
        .and_then(|d| d.get("stackTrace"))
        .and_then(|v| v.as_array());
    for frame in trace.into_iter().flatten().filter_map(|f| f.as_str()) {
        for line in frame.trim_end().lines() {
            text.push_str("\n  ");
            text.push_str(line);
        }
    }
    text
}

/// `body` indented two spaces a level, when it is JSON; member order and number spelling
/// are kept as the function wrote them (a `serde_json::Value` would sort keys).
pub fn pretty_json(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    let text = std::str::from_utf8(body).ok()?.trim();
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Skip whitespace to see whether the container is empty.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        invoke: InvokeArgs,
    }

    fn parse(args: &[&str]) -> Result<InvokeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("invoke").chain(args.iter().copied())).map(|c| c.invoke)
    }

    #[test]
    fn payload_comes_from_the_argument_stdin_or_a_file() {
        assert_eq!(
            parse(&["f"]).unwrap().payload_source(),
            PayloadSource::Default
        );
        assert_eq!(
            parse(&["f", r#"{"a":1}"#]).unwrap().payload_source(),
            PayloadSource::Inline(r#"{"a":1}"#.into())
        );
        assert_eq!(
            parse(&["f", "-"]).unwrap().payload_source(),
            PayloadSource::Stdin
        );
        assert_eq!(
            parse(&["f", "--payload-file", "-"])
                .unwrap()
                .payload_source(),
            PayloadSource::Stdin
        );
        assert_eq!(
            parse(&["f", "--payload-file", "ev.json"])
                .unwrap()
                .payload_source(),
            PayloadSource::File("ev.json".into())
        );
        assert!(parse(&["f", "{}", "--payload-file", "ev.json"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn the_request_names_the_function_qualifier_and_invocation_type() {
        let args = parse(&[
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            "--qualifier",
            "live",
        ])
        .unwrap();
        let req = request(&args, b"{}".to_vec());
        assert_eq!(
            req.path,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations"
        );
        assert_eq!(req.query, "Qualifier=live");
        assert!(req.headers.contains(&("x-amz-log-type", "Tail".into())));
        let args = parse(&["f", "--async"]).unwrap();
        let req = request(&args, b"{}".to_vec());
        assert!(
            req.headers
                .contains(&("x-amz-invocation-type", "Event".into()))
        );
        assert!(!req.headers.iter().any(|(k, _)| *k == "x-amz-log-type"));
        assert_eq!(req.query, "");
    }

    #[test]
    fn json_is_indented_keeping_order_and_numbers() {
        assert_eq!(
            pretty_json(br#"{"z": 1.50, "a": [1, {"s": "x,{y}: \"q\""}], "e": {}, "l": [ ]}"#)
                .unwrap(),
            "{\n  \"z\": 1.50,\n  \"a\": [\n    1,\n    {\n      \"s\": \"x,{y}: \\\"q\\\"\"\n    }\n  ],\n  \"e\": {},\n  \"l\": []\n}"
        );
        assert_eq!(pretty_json(b"\"hi\"").unwrap(), "\"hi\"");
        assert_eq!(pretty_json(b"null").unwrap(), "null");
        assert_eq!(pretty_json(b"not json"), None);
        assert_eq!(pretty_json(b""), None);
    }

    #[test]
    fn the_report_line_and_function_errors_are_found() {
        let log = "START RequestId: 1 Version: $LATEST\nhello\nEND RequestId: 1\n\
                   REPORT RequestId: 1\tDuration: 1.00 ms\n";
        assert_eq!(
            report_line(log),
            Some("REPORT RequestId: 1\tDuration: 1.00 ms")
        );
        assert_eq!(report_line("no report"), None);
        let body = br#"{"errorMessage": "division by zero", "errorType": "ZeroDivisionError",
            "stackTrace": ["  File \"/var/task/index.py\", line 2, in handler\n    return 1 / 0\n"]}"#;
        assert_eq!(
            function_error("f", "Unhandled", body),
            concat!(
                "error: f failed (Unhandled): ZeroDivisionError: division by zero\n",
                "    File \"/var/task/index.py\", line 2, in handler\n",
                "      return 1 / 0"
            )
        );
        assert_eq!(
            function_error("f", "Unhandled", b"boom"),
            "error: f failed (Unhandled): boom"
        );
    }
}

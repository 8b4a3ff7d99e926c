//! What every CLI command shares: finding the server, the credentials and the region the way
//! the AWS tools do, signing requests with SigV4, one HTTP/1.1 exchange, and reading AWS's
//! error shapes.
//!
//! Discovery is a pure function of the flags, an environment map and a file reader
//! ([`resolve`]), so its order is unit-tested without touching the process environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use stratus_sigv4::{SignedRequest, SigningParams, VerifyOptions, sign};

use crate::credentials;

/// Where the AWS tools send requests for Stratus when nothing says otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";
pub const DEFAULT_REGION: &str = "us-east-1";
/// A server on this host answers a connection at once; anything slower is not answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags every command takes to find its server.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// The server's URL [default: $AWS_ENDPOINT_URL, else http://127.0.0.1:4566].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Region to sign for [default: $AWS_REGION, else $AWS_DEFAULT_REGION, else us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// Profile of the shared credentials file [default: $AWS_PROFILE, else default].
    #[arg(long)]
    pub profile: Option<String>,
    /// The server's data directory, whose `credentials` file is used when no AWS credentials
    /// are set [default: $STRATUS_DATA_DIR, else $XDG_DATA_HOME/stratus or
    /// ~/.local/share/stratus].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Why a command could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no Stratus server answers at {url}: {reason} (start one with `stratus server`)")]
    NoServer { url: String, reason: String },
    #[error("the server at {url} failed to answer: {reason}")]
    Transport { url: String, reason: String },
    /// The API refused the request: AWS's error code and message.
    #[error("{code}: {message}{hint}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// Extra context for people (where the credentials came from, on auth failures).
        hint: String,
    },
    #[error("{0}")]
    Credentials(String),
    #[error("invalid endpoint URL {url:?}: {why}")]
    Endpoint { url: String, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl CliError {
    /// The AWS error code, when the API refused the request.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            CliError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where a server is: an `http://` URL's host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given, without a trailing slash (for messages).
    pub url: String,
    /// Host name or address to connect to (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: the authority as written in the URL.
    pub authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, CliError> {
        let err = |why: &str| CliError::Endpoint {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                err("the stratus CLI speaks plain http:// only")
            } else {
                err("expected http://HOST[:PORT]")
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !path.trim_end_matches('/').is_empty() || authority.contains('@') {
            return Err(err("expected http://HOST[:PORT], without a path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| err("the port is not a number"))?,
            None => 80,
        };
        Ok(Endpoint {
            url: format!("http://{authority}"),
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
        })
    }
}

/// A key pair, and the session token that goes with temporary keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Keys {
    // Never print a secret, even in a test failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Where the credentials were found, for messages when the server refuses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    SharedFile { path: PathBuf, profile: String },
    DataDir { path: PathBuf },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Environment => f.write_str("AWS_ACCESS_KEY_ID in the environment"),
            KeySource::SharedFile { path, profile } => {
                write!(f, "profile {profile} of {}", path.display())
            }
            KeySource::DataDir { path } => {
                write!(f, "the Stratus data directory's {}", path.display())
            }
        }
    }
}

/// Everything a command needs to reach its server.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    pub region: String,
    pub keys: Keys,
    pub key_source: KeySource,
}

/// Reads a file's text; `Ok(None)` when it does not exist.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<Option<String>>;

/// The real file system, for [`resolve`].
pub fn read_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finds the server, region and credentials:
///
/// - endpoint: `--endpoint-url`, else `AWS_ENDPOINT_URL`, else `http://127.0.0.1:4566`;
/// - region: `--region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`;
/// - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
///   else the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
///   `~/.aws/credentials`; profile `--profile`, else `AWS_PROFILE`, else `default`), else the
///   server's own `<data-dir>/credentials` (`--data-dir`, else `STRATUS_DATA_DIR`, else the
///   server's default).
pub fn resolve(
    args: &ClientArgs,
    env: &HashMap<String, String>,
    read: ReadFile<'_>,
) -> Result<Target, CliError> {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let endpoint = resolve_endpoint(args, env)?;
    let region = args
        .region
        .clone()
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    let (keys, key_source) = find_keys(args, env, read)?;
    Ok(Target {
        endpoint,
        region,
        keys,
        key_source,
    })
}

/// `--endpoint-url`, else `AWS_ENDPOINT_URL`, else `http://127.0.0.1:4566`.
pub fn resolve_endpoint(
    args: &ClientArgs,
    env: &HashMap<String, String>,
) -> Result<Endpoint, CliError> {
    let url = args
        .endpoint_url
        .clone()
        .or_else(|| {
            env.get("AWS_ENDPOINT_URL")
                .filter(|v| !v.is_empty())
                .cloned()
        })
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    Endpoint::parse(url.trim_end_matches('/'))
}

fn find_keys(
    args: &ClientArgs,
    env: &HashMap<String, String>,
    read: ReadFile<'_>,
) -> Result<(Keys, KeySource), CliError> {
    let var = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => {
            let keys = Keys {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            };
            return Ok((keys, KeySource::Environment));
        }
        (Some(_), None) => {
            return Err(CliError::Credentials(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(CliError::Credentials(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
            ));
        }
        (None, None) => {}
    }

    let read_text = |path: &Path| {
        read(path).map_err(|source| CliError::Io {
            what: format!("reading {}", path.display()),
            source,
        })
    };
    let explicit_profile = args.profile.clone().or_else(|| var("AWS_PROFILE"));
    let profile = explicit_profile
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let shared = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    if let Some(path) = shared
        && let Some(text) = read_text(&path)?
    {
        match credentials::profile(&text, &profile) {
            Some(values) => {
                let Some(pair) = credentials::keys(&values) else {
                    return Err(CliError::Credentials(format!(
                        "profile {profile} of {} has no aws_access_key_id and aws_secret_access_key",
                        path.display()
                    )));
                };
                let keys = Keys {
                    access_key_id: pair.access_key_id,
                    secret_access_key: pair.secret_access_key,
                    session_token: values
                        .get("aws_session_token")
                        .filter(|t| !t.is_empty())
                        .cloned(),
                };
                return Ok((keys, KeySource::SharedFile { path, profile }));
            }
            // Asking for a profile by name and not finding it is a mistake to report, not a
            // reason to fall back to other credentials (what the AWS CLI does too).
            None if explicit_profile.is_some() => {
                return Err(CliError::Credentials(format!(
                    "profile {profile} is not in {}",
                    path.display()
                )));
            }
            None => {}
        }
    } else if let Some(p) = &explicit_profile {
        return Err(CliError::Credentials(format!(
            "profile {p} was asked for but there is no shared credentials file"
        )));
    }

    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| var("STRATUS_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| crate::config::default_data_dir_from(|k| var(k).map(OsString::from)));
    let path = credentials::credentials_path(&data_dir);
    let pair = read_text(&path)?
        .and_then(|text| credentials::profile(&text, "default"))
        .and_then(|values| credentials::keys(&values));
    match pair {
        Some(pair) => Ok((
            Keys {
                access_key_id: pair.access_key_id,
                secret_access_key: pair.secret_access_key,
                session_token: None,
            },
            KeySource::DataDir { path },
        )),
        None => Err(CliError::Credentials(format!(
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             AWS_SHARED_CREDENTIALS_FILE, or point --data-dir at the server's data directory \
             (no key pair in {})",
            path.display()
        ))),
    }
}

/// The process's environment as a map (variables that are not UTF-8 are left out).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// One request to the AWS API, before signing.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    /// The path, already percent-encoded.
    pub path: String,
    /// The query string without `?`, already encoded, or "".
    pub query: String,
    /// Headers besides `host` and the signature's.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The SigV4 service name (`lambda`, `logs`).
    pub service: &'static str,
}

/// An answer, any status.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Signs and sends requests to one server.
#[derive(Debug, Clone)]
pub struct Client {
    pub target: Target,
}

impl Client {
    /// The client for this process: flags over its environment and files.
    pub fn from_args(args: &ClientArgs) -> Result<Client, CliError> {
        let env = process_env();
        match resolve(args, &env, &read_file) {
            Ok(target) => Ok(Client { target }),
            // Without credentials, a server that is not running is the likelier mistake
            // (it writes the credentials this would have found): say that first.
            Err(e @ CliError::Credentials(_)) => {
                let endpoint = resolve_endpoint(args, &env)?;
                let addr = (endpoint.host.as_str(), endpoint.port);
                match std::net::ToSocketAddrs::to_socket_addrs(&addr)
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| std::net::TcpStream::connect_timeout(&a, CONNECT_TIMEOUT))
                {
                    Some(Err(io)) => Err(CliError::NoServer {
                        url: endpoint.url,
                        reason: describe_connect_error(&io),
                    }),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `req`, signed, and reads the whole answer, whatever its status.
    pub async fn send(&self, req: &Request) -> Result<Response, CliError> {
        let ep = &self.target.endpoint;
        let keys = &self.target.keys;
        let mut headers: Vec<(&str, String)> = vec![("host", ep.authority.clone())];
        headers.extend(req.headers.iter().cloned());
        if let Some(token) = &keys.session_token {
            headers.push(("x-amz-security-token", token.clone()));
        }
        let signed = {
            let raw: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            let unsigned = SignedRequest {
                method: req.method,
                raw_path: &req.path,
                raw_query: &req.query,
                headers: &raw,
                body: &req.body,
            };
            let params = SigningParams {
                access_key_id: &keys.access_key_id,
                secret_access_key: &keys.secret_access_key,
                region: &self.target.region,
                service: req.service,
                time: SystemTime::now(),
            };
            sign(&unsigned, &params, &VerifyOptions::default())
        };
        headers.extend(signed);

        let uri = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let mut builder = hyper::Request::builder().method(req.method).uri(uri);
        for (k, v) in &headers {
            builder = builder.header(*k, v.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::from(req.body.clone())))
            .map_err(|e| CliError::Usage(format!("cannot form the request: {e}")))?;

        let no_server = |reason: String| CliError::NoServer {
            url: ep.url.clone(),
            reason,
        };
        let transport = |e: &dyn fmt::Display| CliError::Transport {
            url: ep.url.clone(),
            reason: e.to_string(),
        };
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)),
        )
        .await
        .map_err(|_| no_server(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| no_server(describe_connect_error(&e)))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| transport(&e))?;
        let driver = tokio::spawn(conn);
        let resp = sender.send_request(request).await.map_err(|e| {
            if e.is_incomplete_message() {
                transport(&"the connection closed before an answer (did the server stop?)")
            } else {
                transport(&e)
            }
        })?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| transport(&e))?.to_bytes();
        driver.abort();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// [`send`](Self::send), with any status but 2xx turned into [`CliError::Api`].
    pub async fn call(&self, req: &Request) -> Result<Response, CliError> {
        let resp = self.send(req).await?;
        if resp.is_success() {
            Ok(resp)
        } else {
            Err(self.api_error(&resp))
        }
    }

    /// AWS's error code and message from a refusal, with where the keys came from when the
    /// refusal is about them.
    pub fn api_error(&self, resp: &Response) -> CliError {
        let (code, message) = error_code_and_message(resp);
        let hint = if resp.status == 403 || code.contains("Signature") || code.contains("Token") {
            format!(
                " (signed with {} from {}, region {})",
                self.target.keys.access_key_id, self.target.key_source, self.target.region
            )
        } else {
            String::new()
        };
        CliError::Api {
            status: resp.status,
            code,
            message,
            hint,
        }
    }
}

fn describe_connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

/// The error code (from `x-amzn-ErrorType`, else the body's `__type`/`code`) and message
/// (the body's `message` or `Message`) of an AWS JSON error answer.
pub fn error_code_and_message(resp: &Response) -> (String, String) {
    let doc: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
    let field = |names: &[&str]| {
        names.iter().find_map(|n| {
            doc.as_ref()
                .and_then(|d| d.get(*n))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
    };
    // `x-amzn-ErrorType` may carry `:<url>`, and `__type` a `namespace#` prefix.
    let code = resp
        .header("x-amzn-errortype")
        .map(|v| v.split(':').next().unwrap_or(v).to_owned())
        .or_else(|| field(&["__type", "code", "Code"]))
        .map(|c| c.rsplit('#').next().unwrap_or(&c).to_owned())
        .unwrap_or_else(|| format!("HTTP {}", resp.status));
    let message = field(&["message", "Message", "errorMessage"]).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&resp.body).trim().to_owned();
        if text.is_empty() {
            "(no message)".to_owned()
        } else {
            text
        }
    });
    (code, message)
}

/// Runs a command's future on a small runtime and turns its outcome into an exit status:
/// 0 when it did what was asked, what the command says otherwise, and 2 with `error: ...`
/// on standard error when it could not.
pub fn run<F>(fut: F) -> i32
where
    F: std::future::Future<Output = Result<i32, CliError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// Writes to standard output; a closed pipe (`stratus logs f | head`) ends the command
/// quietly instead of panicking.
pub fn out(text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(source) => Err(CliError::Io {
            what: "writing to standard output".into(),
            source,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A file system holding `files` (path, text) and nothing else.
    fn files(files: &[(&str, &str)]) -> impl Fn(&Path) -> std::io::Result<Option<String>> {
        let map: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
            .collect();
        move |p: &Path| Ok(map.get(p).cloned())
    }

    const SHARED: &str = "[default]\naws_access_key_id = AKIASHARED\naws_secret_access_key = s\n\
                          [dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = d\n\
                          aws_session_token = devtoken\n";
    const DATA_DIR: &str = "# Written by Stratus\n[default]\naws_access_key_id = AKIADATA\n\
                            aws_secret_access_key = x\n";

    fn resolve_with(
        args: &ClientArgs,
        vars: &[(&str, &str)],
        fs: &[(&str, &str)],
    ) -> Result<Target, CliError> {
        resolve(args, &env(vars), &files(fs))
    }

    #[test]
    fn credentials_come_from_env_then_shared_file_then_data_dir() {
        let none = ClientArgs::default();
        let all_files = [
            ("/home/u/.aws/credentials", SHARED),
            ("/home/u/.local/share/stratus/credentials", DATA_DIR),
        ];
        let keys = |t: Target| (t.keys.access_key_id, t.key_source);

        let t = resolve_with(
            &none,
            &[
                ("HOME", "/home/u"),
                ("AWS_ACCESS_KEY_ID", "AKIAENV"),
                ("AWS_SECRET_ACCESS_KEY", "e"),
                ("AWS_SESSION_TOKEN", "tok"),
            ],
            &all_files,
        )
        .unwrap();
        assert_eq!(t.keys.session_token.as_deref(), Some("tok"));
        assert_eq!(keys(t), ("AKIAENV".into(), KeySource::Environment));

        let t = resolve_with(&none, &[("HOME", "/home/u")], &all_files).unwrap();
        assert_eq!(
            keys(t),
            (
                "AKIASHARED".into(),
                KeySource::SharedFile {
                    path: "/home/u/.aws/credentials".into(),
                    profile: "default".into()
                }
            )
        );

        let t = resolve_with(&none, &[("HOME", "/home/u")], &all_files[1..]).unwrap();
        assert_eq!(
            keys(t),
            (
                "AKIADATA".into(),
                KeySource::DataDir {
                    path: "/home/u/.local/share/stratus/credentials".into()
                }
            )
        );
    }

    #[test]
    fn shared_file_and_profile_come_from_variables_or_flags() {
        let fs = [("/etc/creds", SHARED)];
        let vars = [
            ("HOME", "/home/u"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/etc/creds"),
            ("AWS_PROFILE", "dev"),
        ];
        let t = resolve_with(&ClientArgs::default(), &vars, &fs).unwrap();
        assert_eq!(t.keys.access_key_id, "AKIADEV");
        assert_eq!(t.keys.session_token.as_deref(), Some("devtoken"));

        let flag = ClientArgs {
            profile: Some("default".into()),
            ..ClientArgs::default()
        };
        let t = resolve_with(&flag, &vars, &fs).unwrap();
        assert_eq!(t.keys.access_key_id, "AKIASHARED");
    }

    #[test]
    fn a_named_profile_that_is_missing_is_an_error_not_a_fallback() {
        let fs = [
            ("/home/u/.aws/credentials", SHARED),
            ("/home/u/.local/share/stratus/credentials", DATA_DIR),
        ];
        let err = resolve_with(
            &ClientArgs::default(),
            &[("HOME", "/home/u"), ("AWS_PROFILE", "prod")],
            &fs,
        )
        .unwrap_err();
        assert!(err.to_string().contains("profile prod"), "{err}");
        // Without a name, a file without `[default]` falls through to the data directory.
        let t = resolve_with(
            &ClientArgs::default(),
            &[("HOME", "/home/u")],
            &[
                (
                    "/home/u/.aws/credentials",
                    "[other]\naws_access_key_id = A\n",
                ),
                fs[1],
            ],
        )
        .unwrap();
        assert_eq!(t.keys.access_key_id, "AKIADATA");
    }

    #[test]
    fn half_a_key_pair_in_the_environment_is_an_error() {
        let err = resolve_with(
            &ClientArgs::default(),
            &[("AWS_ACCESS_KEY_ID", "AKIA"), ("HOME", "/home/u")],
            &[("/home/u/.aws/credentials", SHARED)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        // Empty variables count as unset.
        let t = resolve_with(
            &ClientArgs::default(),
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("HOME", "/home/u"),
            ],
            &[("/home/u/.aws/credentials", SHARED)],
        )
        .unwrap();
        assert_eq!(t.keys.access_key_id, "AKIASHARED");
    }

    #[test]
    fn data_dir_comes_from_flag_then_variable_then_the_servers_default() {
        let fs = [
            (
                "/flag/credentials",
                "[default]\naws_access_key_id = F\naws_secret_access_key = f\n",
            ),
            (
                "/var/credentials",
                "[default]\naws_access_key_id = V\naws_secret_access_key = v\n",
            ),
            (
                "/xdg/stratus/credentials",
                "[default]\naws_access_key_id = X\naws_secret_access_key = x\n",
            ),
        ];
        let flag = ClientArgs {
            data_dir: Some("/flag".into()),
            ..ClientArgs::default()
        };
        let vars = [("STRATUS_DATA_DIR", "/var"), ("XDG_DATA_HOME", "/xdg")];
        let id = |args: &ClientArgs, vars: &[(&str, &str)]| {
            resolve_with(args, vars, &fs).unwrap().keys.access_key_id
        };
        assert_eq!(id(&flag, &vars), "F");
        assert_eq!(id(&ClientArgs::default(), &vars), "V");
        assert_eq!(id(&ClientArgs::default(), &vars[1..]), "X");
        let err = resolve_with(&ClientArgs::default(), &[("HOME", "/nowhere")], &fs).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("no credentials")
                && msg.contains("/nowhere/.local/share/stratus/credentials"),
            "{msg}"
        );
    }

    #[test]
    fn endpoint_and_region_follow_flags_then_variables_then_defaults() {
        let fs = [("/d/credentials", DATA_DIR)];
        let base = ClientArgs {
            data_dir: Some("/d".into()),
            ..ClientArgs::default()
        };
        let t = resolve_with(&base, &[], &fs).unwrap();
        assert_eq!(
            (t.endpoint.url.as_str(), t.region.as_str()),
            (DEFAULT_ENDPOINT, "us-east-1")
        );
        let vars = [
            ("AWS_ENDPOINT_URL", "http://10.0.0.5:8080/"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ];
        let t = resolve_with(&base, &vars, &fs).unwrap();
        assert_eq!(t.endpoint.authority, "10.0.0.5:8080");
        assert_eq!(t.region, "eu-west-1");
        let t = resolve_with(&base, &vars[2..], &fs).unwrap();
        assert_eq!(t.region, "ap-south-1");
        let flags = ClientArgs {
            endpoint_url: Some("http://localhost:4567".into()),
            region: Some("us-west-2".into()),
            ..base
        };
        let t = resolve_with(&flags, &vars, &fs).unwrap();
        assert_eq!(t.endpoint.authority, "localhost:4567");
        assert_eq!(t.region, "us-west-2");
    }

    #[test]
    fn endpoints_parse_as_http_host_and_port() {
        let e = Endpoint::parse("http://[::1]:4566").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str()),
            ("::1", 4566, "[::1]:4566")
        );
        let e = Endpoint::parse("http://stratus.local").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("stratus.local", 80));
        for bad in [
            "https://x:443",
            "localhost:4566",
            "http://x:port",
            "http://x/path",
            "http://",
            "http://u@x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Response {
            status,
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn aws_errors_are_read_from_headers_or_bodies() {
        let rest = response(
            404,
            &[(
                "x-amzn-ErrorType",
                "ResourceNotFoundException:http://internal",
            )],
            r#"{"Type":"User","Message":"Function not found: arn"}"#,
        );
        assert_eq!(
            error_code_and_message(&rest),
            (
                "ResourceNotFoundException".into(),
                "Function not found: arn".into()
            )
        );
        let json = response(
            400,
            &[],
            r#"{"__type":"com.amazonaws.logs#InvalidParameterException","message":"bad"}"#,
        );
        assert_eq!(
            error_code_and_message(&json),
            ("InvalidParameterException".into(), "bad".into())
        );
        let bare = response(502, &[], "");
        assert_eq!(
            error_code_and_message(&bare),
            ("HTTP 502".into(), "(no message)".into())
        );
    }
}

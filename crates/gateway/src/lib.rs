//! Stratus's one front door.
//!
//! Every AWS request arrives on one listener. [`Gateway`] finds its service — by the
//! `X-Amz-Target` prefix of json-protocol calls, else by the service named in the SigV4
//! credential scope, read before anything is verified — refuses a scope for another service
//! or region as AWS does, checks the access key and clock before reading any body byte,
//! reads the body as the service's [`BodyPolicy`] says, verifies the signature, and hands
//! the service an [`AwsRequest`]. Fixed surfaces live under `/_stratus/` (health, and in
//! test mode a reset); the binary adds its own ([`Gateway::fixed`]: unauthenticated routes
//! such as metrics, answered only for unsigned requests so they never shadow a service).
//! Every request a service answers is timed and reported to a [`RequestObserver`], named
//! by its service and operation: the `X-Amz-Target` operation, or the [`Operation`] a
//! REST service puts in its response's extensions. [`serve`] runs the listener with limits
//! on slow and idle clients.
//!
//! Invariant: knows no service. Services are [`Service`] trait objects the binary
//! registers; adding one changes nothing here. Nor does it know what is done with the
//! request timings, or what the fixed routes the binary adds do.

mod serve;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use stratus_aws::{AllowAll, Authorizer};
use stratus_protocol::{
    AwsError, AwsRequest, BodyPolicy, Caller, Operation, Protocol, RequestBody, Service,
    ServiceInfo,
};
use stratus_sigv4::{AuthError, Claim, SecretLookup, SignedRequest, VerifyOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

pub use serve::{ServeOptions, serve};

/// Services that are global on AWS, whose clients sign for [`GLOBAL_REGION`] whatever
/// region they are configured with (boto3 and the CLI sign IAM for `us-east-1`): their
/// requests are accepted signed for it or for the server's region.
const GLOBAL_SERVICES: &[&str] = &["iam"];
const GLOBAL_REGION: &str = "us-east-1";

/// Bodies larger than this are hashed on the blocking pool, not on the threads that serve
/// invocations.
const LARGE_BODY: usize = 256 * 1024;

/// The key ring: secrets for SigV4, and who each key belongs to.
pub trait Keys: SecretLookup + Send + Sync {
    /// The principal behind a known access key. A temporary key (a session's) is good only
    /// with its session token (`X-Amz-Security-Token`) and until it expires.
    fn caller(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Caller, KeyRefusal>;
}

/// Why a signed request's key does not authenticate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No such key, an inactive one, or a session key with the wrong token.
    Invalid,
    /// A session's key past its expiry.
    Expired,
}

impl KeyRefusal {
    /// The error AWS answers with, in `protocol`'s spelling.
    fn error(self, protocol: Protocol) -> AwsError {
        let query = matches!(protocol, Protocol::Query | Protocol::RestXml);
        match self {
            KeyRefusal::Invalid => AwsError::new(
                StatusCode::FORBIDDEN,
                if query {
                    "InvalidClientTokenId"
                } else {
                    "UnrecognizedClientException"
                },
                "The security token included in the request is invalid.",
            ),
            KeyRefusal::Expired => AwsError::new(
                StatusCode::FORBIDDEN,
                if query {
                    "ExpiredToken"
                } else {
                    "ExpiredTokenException"
                },
                "The security token included in the request is expired",
            ),
        }
    }
}

/// How long a client may take between two pieces of a body before it is cut off.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The region every request must be signed for.
    pub region: String,
    /// Serves `POST /_stratus/reset` (and moto's `/moto-api/reset`), which deletes every
    /// resource of every service. Never on by default.
    pub test_mode: bool,
    /// The longest pause between two chunks of a request body; also the longest a body
    /// waits for its share of `body_memory`.
    pub body_idle_timeout: Duration,
    /// Bytes that the bodies being read, and the requests holding them until answered,
    /// may take at once: past it, bodies wait, then are refused with a throttling error.
    pub body_memory: usize,
}

/// One request a service answered (or the gateway refused on its behalf), as
/// [`RequestObserver`]s see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestSample<'a> {
    /// The service's signing name; `""` when the request named no service Stratus offers.
    pub service: &'static str,
    /// The operation, when the service or `X-Amz-Target` named one; `""` otherwise. Taken
    /// from the request for json protocols, so an observer must bound what it keeps.
    pub operation: &'a str,
    pub status: u16,
    /// From the request's arrival to its response's head.
    pub elapsed: Duration,
}

/// Told of every request routed to a service (metrics). Runs on the request's thread
/// after the response is built: it must be quick and must not block.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, sample: &RequestSample<'_>);
}

/// The front door: services by signing name and by `X-Amz-Target` prefix.
pub struct Gateway {
    services: Vec<(ServiceInfo, Arc<dyn Service>)>,
    by_name: HashMap<&'static str, usize>,
    by_target: HashMap<&'static str, usize>,
    keys: Arc<dyn Keys>,
    opts: GatewayOptions,
    /// Unauthenticated routes the binary added, and the (method, path) pairs they answer.
    fixed: Router,
    fixed_paths: Vec<(Method, &'static str)>,
    observer: Option<Arc<dyn RequestObserver>>,
    /// Decides what each caller may do; services ask it per operation.
    authorizer: Arc<dyn Authorizer>,
    /// The body budget, in bytes, and its size.
    bodies: Arc<Semaphore>,
    body_budget: usize,
}

impl Gateway {
    pub fn new(keys: Arc<dyn Keys>, opts: GatewayOptions) -> Gateway {
        let body_budget = opts
            .body_memory
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Gateway {
            bodies: Arc::new(Semaphore::new(body_budget)),
            body_budget,
            services: Vec::new(),
            by_name: HashMap::new(),
            by_target: HashMap::new(),
            keys,
            opts,
            fixed: Router::new(),
            fixed_paths: Vec::new(),
            observer: None,
            authorizer: Arc::new(AllowAll),
        }
    }

    /// What decides each caller's permissions (IAM, wired by the binary). Without it every
    /// authenticated caller may do everything: tests of the front door only.
    pub fn authorize_with(mut self, authorizer: Arc<dyn Authorizer>) -> Gateway {
        self.authorizer = authorizer;
        self
    }

    /// Adds an unauthenticated `GET` route at `path` (`/_stratus/metrics`). It answers only
    /// requests that carry no signature: a signed request to the same path still goes to
    /// the service it is signed for. Panics if the path is taken.
    pub fn fixed<H, T>(mut self, path: &'static str, handler: H) -> Gateway
    where
        H: axum::handler::Handler<T, ()>,
        T: 'static,
    {
        assert!(
            !self.fixed_paths.iter().any(|(_, p)| *p == path)
                && !matches!(path, "/_stratus/health" | "/_stratus/reset"),
            "two fixed routes at {path}"
        );
        self.fixed_paths.push((Method::GET, path));
        self.fixed = self.fixed.route(path, axum::routing::get(handler));
        self
    }

    /// Reports every request a service answers to `observer`.
    pub fn observe(mut self, observer: Arc<dyn RequestObserver>) -> Gateway {
        self.observer = Some(observer);
        self
    }

    /// Adds a service. Panics if its signing name or a target prefix is taken: two
    /// services claiming the same requests is a wiring mistake in the binary.
    pub fn register(mut self, service: Arc<dyn Service>) -> Gateway {
        let info = service.info();
        let i = self.services.len();
        assert!(
            self.by_name.insert(info.signing_name, i).is_none(),
            "two services named {}",
            info.signing_name
        );
        for t in info.targets {
            assert!(
                self.by_target.insert(t, i).is_none(),
                "two services for {t}"
            );
        }
        self.services.push((info, service));
        self
    }

    /// The HTTP application: `/_stratus/*` and every registered service.
    pub fn app(self) -> Router {
        Router::new().fallback(handle).with_state(Arc::new(self))
    }

    fn names(&self) -> String {
        let mut names: Vec<&str> = self.services.iter().map(|(i, _)| i.signing_name).collect();
        names.sort_unstable();
        names.join(", ")
    }

    fn health(&self) -> Response {
        let services: serde_json::Map<String, serde_json::Value> = self
            .services
            .iter()
            .map(|(info, s)| (info.signing_name.to_owned(), s.health()))
            .collect();
        let body = serde_json::json!({
            "status": "ready",
            "version": env!("CARGO_PKG_VERSION"),
            "region": self.opts.region,
            "services": services,
            // What the request bodies being read or answered hold of the body budget.
            "bodies": {
                "held_bytes": self.body_budget - self.bodies.available_permits(),
                "budget_bytes": self.body_budget,
            },
        });
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    async fn reset(&self) -> Response {
        for (info, s) in &self.services {
            if let Err(e) = s.reset().await {
                return AwsError::internal(format!("resetting {}: {e}", info.signing_name))
                    .render(Protocol::RestJson, "");
            }
        }
        tracing::info!("test mode: every service reset");
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "reset"})),
        )
            .into_response()
    }

    /// Which service a request is for, by its target or its claimed scope; and the
    /// protocol its errors are written in.
    fn route(&self, parts: &Parts, claimed: &Result<Claim, AuthError>) -> Route {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.split_once('.').map_or(t, |(prefix, _)| prefix));
        if let Some(target) = target {
            return match self.by_target.get(target) {
                Some(&i) => Route::Service(i),
                None => Route::Unknown(format!("the X-Amz-Target {target:?}")),
            };
        }
        match claimed {
            Ok(c) => match self.by_name.get(c.service()) {
                Some(&i) => Route::Service(i),
                None => Route::Unknown(format!("the {:?} service", c.service())),
            },
            Err(_) => Route::Unauthenticated,
        }
    }
}

enum Route {
    Service(usize),
    /// A request naming something no registered service answers: what it named.
    Unknown(String),
    /// No readable signature: there is no scope to route by.
    Unauthenticated,
}

/// True when a request carries a SigV4 signature, in its headers or its query.
fn is_signed(req: &Request) -> bool {
    req.headers()
        .contains_key(axum::http::header::AUTHORIZATION)
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature="))
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req.uri().path();
    match (req.method().as_str(), path) {
        ("GET", "/_stratus/health") => return gw.health(),
        ("POST", "/_stratus/reset" | "/moto-api/reset") if gw.opts.test_mode => {
            return gw.reset().await;
        }
        // moto's switch for its simulated IAM enforcement: Stratus has none to switch, but
        // the conformance suite reads the answer.
        ("POST", "/moto-api/reset-auth") if gw.opts.test_mode => {
            let body = serde_json::json!({
                "status": "ok",
                "PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT": "inf",
            });
            return (StatusCode::OK, axum::Json(body)).into_response();
        }
        _ => {}
    }
    if !gw.fixed_paths.is_empty()
        && gw
            .fixed_paths
            .iter()
            .any(|(m, p)| m == req.method() && *p == path)
        && !is_signed(&req)
    {
        use tower::ServiceExt as _;
        return match gw.fixed.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
    }
    let observed = gw.observer.as_ref().map(|_| {
        let target = req.headers().get("x-amz-target").cloned();
        (Instant::now(), target)
    });
    let request_id = stratus_aws::ids::request_id();
    let (parts, body) = req.into_parts();
    let (protocol, service, result) = authenticate(&gw, parts, body, &request_id).await;
    let mut resp = match result {
        // The body's share of the budget is held until the service has answered.
        Ok((req, _body_permit)) => {
            let span = tracing::info_span!("request", id = %request_id, service = %service);
            match gw.by_name.get(service).map(|&i| gw.services[i].1.clone()) {
                Some(svc) => svc.handle(req).instrument(span).await,
                None => AwsError::internal("routed to no service").render(protocol, &request_id),
            }
        }
        Err(e) => e.render(protocol, &request_id),
    };
    if !resp.headers().contains_key("x-amzn-RequestId")
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    if let (Some(observer), Some((started, target))) = (&gw.observer, observed) {
        let operation = match resp.extensions().get::<Operation>() {
            Some(Operation(op)) => op,
            None => target
                .as_ref()
                .and_then(|t| t.to_str().ok())
                .and_then(|t| t.split_once('.'))
                .map_or("", |(_, op)| op),
        };
        observer.observe(&RequestSample {
            service,
            operation,
            status: resp.status().as_u16(),
            elapsed: started.elapsed(),
        });
    }
    resp
}

/// The protocol a request for a service Stratus does not know most likely speaks, so that
/// its client can read the refusal: a target means json, a form means query, and a REST
/// request is XML for the services whose protocol is rest-xml.
fn likely_protocol(parts: &Parts) -> Protocol {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if !header("x-amz-target").is_empty() {
        return Protocol::Json11;
    }
    if header("content-type").starts_with("application/x-www-form-urlencoded") {
        return Protocol::Query;
    }
    let header_pairs = header_pairs(parts);
    match Claim::parse(&signed(parts, &header_pairs, b"")) {
        Ok(c) if matches!(c.service(), "s3" | "route53" | "cloudfront") => Protocol::RestXml,
        _ => Protocol::RestJson,
    }
}

/// The request's headers as SigV4 reads them: names and raw values.
fn header_pairs(parts: &Parts) -> Vec<(&str, &[u8])> {
    parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect()
}

fn signed<'a>(
    parts: &'a Parts,
    headers: &'a [(&'a str, &'a [u8])],
    body: &'a [u8],
) -> SignedRequest<'a> {
    SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers,
        body,
    }
}

fn auth_error(e: AuthError) -> AwsError {
    AwsError::new(StatusCode::FORBIDDEN, e.aws_code(), e.to_string())
}

/// Routes, checks the claimed scope and key, reads the body, verifies. Returns the
/// protocol errors are to be written in and the service's signing name with the outcome:
/// the request, and its share of the body budget, held until it is answered.
async fn authenticate(
    gw: &Gateway,
    parts: Parts,
    body: Body,
    request_id: &str,
) -> (
    Protocol,
    &'static str,
    Result<(AwsRequest, Option<OwnedSemaphorePermit>), AwsError>,
) {
    // The signature is parsed once, here; routing, the precheck and the verification all
    // read the same claim.
    let claim = {
        let header_pairs = header_pairs(&parts);
        Claim::parse(&signed(&parts, &header_pairs, b""))
    };
    let (info, _) = match gw.route(&parts, &claim) {
        Route::Service(i) => &gw.services[i],
        Route::Unknown(what) => {
            let e = AwsError::new(
                StatusCode::BAD_REQUEST,
                "UnknownServiceException",
                format!("Stratus does not offer {what}; it offers: {}.", gw.names()),
            );
            return (likely_protocol(&parts), "", Err(e));
        }
        Route::Unauthenticated => {
            let e = claim.err().map_or_else(
                || AwsError::internal("unauthenticated with a scope"),
                auth_error,
            );
            // No scope to route by: answer in the envelope the client most likely reads.
            return (likely_protocol(&parts), "", Err(e));
        }
    };
    let (protocol, name) = (info.protocol, info.signing_name);
    let fail = |e: AwsError| (protocol, name, Err(e));

    // The scope must name this service and this server's region (AWS: 403
    // InvalidSignatureException), and the key and clock must be good, before any body byte
    // is read.
    let claim = match claim {
        Ok(c) => c,
        Err(e) => return fail(auth_error(e)),
    };
    if claim.service() != name {
        return fail(AwsError::new(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{name}'. "),
        ));
    }
    if claim.region() != gw.opts.region
        && !(GLOBAL_SERVICES.contains(&name) && claim.region() == GLOBAL_REGION)
    {
        return fail(AwsError::new(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                claim.region()
            ),
        ));
    }
    let opts = VerifyOptions::default();
    let now = SystemTime::now();
    if let Err(e) = claim.precheck(gw.keys.as_ref(), now, &opts) {
        return fail(auth_error(e));
    }
    let (verified, body, permit) = match info.body {
        BodyPolicy::Streamed => {
            let header_pairs = header_pairs(&parts);
            let v = claim
                .verify_streaming(
                    &signed(&parts, &header_pairs, b""),
                    gw.keys.as_ref(),
                    now,
                    &opts,
                )
                .map(|()| claim);
            (v, RequestBody::Streamed(body), None)
        }
        BodyPolicy::Buffered { limit } => {
            let declared = parts
                .headers
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return fail(too_large(limit));
            }
            let (bytes, permit) = match gw.read_body(body, declared, limit).await {
                Ok(b) => b,
                Err(e) => return fail(e),
            };
            let verified = if bytes.len() > LARGE_BODY {
                let (parts, bytes, keys) = (parts.clone(), bytes.clone(), gw.keys.clone());
                match tokio::task::spawn_blocking(move || {
                    let header_pairs = header_pairs(&parts);
                    claim.verify(
                        &signed(&parts, &header_pairs, &bytes),
                        keys.as_ref(),
                        SystemTime::now(),
                        &VerifyOptions::default(),
                    )?;
                    Ok(claim)
                })
                .await
                {
                    Ok(v) => v,
                    Err(e) => return fail(AwsError::internal(e)),
                }
            } else {
                let header_pairs = header_pairs(&parts);
                claim
                    .verify(
                        &signed(&parts, &header_pairs, &bytes),
                        gw.keys.as_ref(),
                        now,
                        &opts,
                    )
                    .map(|()| claim)
            };
            (verified, RequestBody::Buffered(bytes), permit)
        }
    };
    let claim = match verified {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%request_id, error = %e, "authentication refused");
            return fail(auth_error(e));
        }
    };
    let token = parts
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_value(parts.uri.query().unwrap_or(""), "X-Amz-Security-Token"));
    let caller = match gw.keys.caller(claim.access_key_id(), token.as_deref()) {
        Ok(c) => c,
        Err(refusal) => return fail(refusal.error(protocol)),
    };
    let req = AwsRequest {
        parts,
        body,
        caller,
        request_id: request_id.to_owned(),
        authorizer: gw.authorizer.clone(),
        region: gw.opts.region.clone(),
    };
    (protocol, name, Ok((req, permit)))
}

/// The decoded value of `name` in a URL's query string (presigned URLs carry the session
/// token there).
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn too_large(limit: usize) -> AwsError {
    AwsError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestTooLargeException",
        format!("Request must be smaller than {limit} bytes for the operation"),
    )
}

impl Gateway {
    /// Reads a whole body of at most `limit` bytes, refusing a larger one as soon as its
    /// `Content-Length` or its bytes say so, and a client that pauses longer than the idle
    /// timeout. The bytes are taken from the server-wide body budget first: the declared
    /// length before the first byte is read, or, without one, each piece before it is kept.
    async fn read_body(
        &self,
        body: Body,
        declared: Option<u64>,
        limit: usize,
    ) -> Result<(bytes::Bytes, Option<OwnedSemaphorePermit>), AwsError> {
        let idle = self.opts.body_idle_timeout;
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut reserved = 0usize;
        if let Some(n) = declared.filter(|&n| n > 0) {
            // At most `limit` here, so it fits.
            let n = usize::try_from(n).unwrap_or(limit);
            held = Some(self.reserve(n).await?);
            reserved = n;
        }
        let mut body = body;
        let mut buf = bytes::BytesMut::new();
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    return Err(AwsError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "RequestTimeoutException",
                        "The client stopped sending the request body.",
                    ));
                }
                Ok(None) => return Ok((buf.freeze(), held)),
                Ok(Some(Err(e))) => {
                    // A body cut short, or refused by a length limit further down.
                    tracing::debug!(error = %e, "reading a request body");
                    return Err(AwsError::new(
                        StatusCode::BAD_REQUEST,
                        "IncompleteBodyException",
                        "The request body ended before its declared length.",
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                let len = buf.len() + data.len();
                if len > limit {
                    return Err(too_large(limit));
                }
                if len > reserved {
                    // No (or a short) declared length: take what this piece adds.
                    let more = self.reserve(len - reserved).await?;
                    match &mut held {
                        Some(p) => p.merge(more),
                        None => held = Some(more),
                    }
                    reserved = len;
                }
                if buf.is_empty() {
                    // Most bodies arrive in one frame; size the buffer once, from the header.
                    buf.reserve(data.len());
                }
                buf.extend_from_slice(&data);
            }
        }
    }

    /// Takes `bytes` from the body budget, waiting at most the idle timeout for other
    /// requests' bodies to be answered; a body larger than the whole budget takes all of it.
    async fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, AwsError> {
        let n = u32::try_from(bytes.min(self.body_budget)).unwrap_or(u32::MAX);
        if let Ok(p) = self.bodies.clone().try_acquire_many_owned(n) {
            return Ok(p);
        }
        match tokio::time::timeout(
            self.opts.body_idle_timeout,
            self.bodies.clone().acquire_many_owned(n),
        )
        .await
        {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(AwsError::internal("the body budget is closed")),
            Err(_) => {
                tracing::warn!(bytes, "request refused: the body budget stayed spent");
                Err(AwsError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "The server is reading too many request bodies at once. Retry later.",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;

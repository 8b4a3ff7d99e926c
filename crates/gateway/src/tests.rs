#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::Request as HttpRequest;
use stratus_protocol::BoxFuture;
use stratus_sigv4::SigningParams;
use tower::ServiceExt;

use super::*;

const KEY: &str = "AKIDTEST";
const SECRET: &str = "secret";

struct TestKeys;

impl SecretLookup for TestKeys {
    fn secret_access_key(&self, id: &str) -> Option<String> {
        (id == KEY).then(|| SECRET.to_owned())
    }
}

impl Keys for TestKeys {
    fn caller(&self, id: &str, _token: Option<&str>) -> Result<Caller, KeyRefusal> {
        (id == KEY)
            .then(|| Caller {
                access_key_id: id.to_owned(),
                account_id: "123456789012".into(),
                arn: "arn:aws:iam::123456789012:root".into(),
            })
            .ok_or(KeyRefusal::Invalid)
    }
}

/// Answers with its name and what it was given.
struct Echo {
    info: ServiceInfo,
    resets: AtomicUsize,
}

impl Service for Echo {
    fn info(&self) -> ServiceInfo {
        self.info.clone()
    }

    fn handle(&self, req: AwsRequest) -> BoxFuture<Response> {
        let name = self.info.signing_name;
        let body = req.body.bytes();
        let caller = req.caller.arn.clone();
        Box::pin(async move {
            axum::Json(serde_json::json!({
                "service": name,
                "bytes": body.len(),
                "caller": caller,
            }))
            .into_response()
        })
    }

    fn reset(&self) -> BoxFuture<Result<(), String>> {
        self.resets.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

fn echo(name: &'static str, protocol: Protocol, targets: &'static [&'static str]) -> Arc<Echo> {
    Arc::new(Echo {
        info: ServiceInfo {
            signing_name: name,
            protocol,
            targets,
            body: BodyPolicy::Buffered { limit: 1000 },
        },
        resets: AtomicUsize::new(0),
    })
}

fn gateway(test_mode: bool) -> (Router, Arc<Echo>) {
    gateway_with(test_mode, 1 << 20)
}

fn gateway_with(test_mode: bool, body_memory: usize) -> (Router, Arc<Echo>) {
    let logs = echo("logs", Protocol::Json11, &["Logs_20140328"]);
    let app = Gateway::new(
        Arc::new(TestKeys),
        GatewayOptions {
            region: "us-east-1".into(),
            test_mode,
            body_idle_timeout: Duration::from_millis(200),
            body_memory,
        },
    )
    .register(echo("lambda", Protocol::RestJson, &[]))
    .register(logs.clone())
    .register(echo("sts", Protocol::Query, &[]))
    .app();
    (app, logs)
}

struct Req {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Req {
    fn new(method: &'static str, path: &'static str, body: &[u8]) -> Req {
        Req {
            method,
            path,
            headers: vec![("host", "localhost".into())],
            body: body.to_vec(),
        }
    }

    fn header(mut self, k: &'static str, v: &str) -> Req {
        self.headers.push((k, v.to_owned()));
        self
    }

    fn signed(mut self, service: &str, region: &str, key: &str) -> Req {
        let pairs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_bytes()))
            .collect();
        let added = stratus_sigv4::sign(
            &SignedRequest {
                method: self.method,
                raw_path: self.path,
                raw_query: "",
                headers: &pairs,
                body: &self.body,
            },
            &SigningParams {
                access_key_id: key,
                secret_access_key: SECRET,
                region,
                service,
                time: SystemTime::now(),
            },
            &VerifyOptions::default(),
        );
        for (k, v) in added {
            self.headers.push((k, v));
        }
        self
    }

    fn build(self, body: Body) -> Request {
        let mut b = HttpRequest::builder().method(self.method).uri(self.path);
        for (k, v) in &self.headers {
            b = b.header(*k, v);
        }
        b.body(body).unwrap()
    }

    async fn send(self, app: &Router) -> (StatusCode, serde_json::Value, axum::http::HeaderMap) {
        let body = Body::from(self.body.clone());
        let resp = app.clone().oneshot(self.build(body)).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned().into());
        (status, value, headers)
    }
}

#[tokio::test]
async fn requests_reach_the_service_their_scope_or_target_names() {
    let (app, _) = gateway(false);
    let (status, v, headers) = Req::new("GET", "/2015-03-31/functions/", b"")
        .signed("lambda", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["service"], "lambda");
    assert_eq!(v["caller"], "arn:aws:iam::123456789012:root");
    assert!(headers.contains_key("x-amzn-RequestId"));

    let (status, v, _) = Req::new("POST", "/", b"{}")
        .header("x-amz-target", "Logs_20140328.DescribeLogGroups")
        .signed("logs", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(
        (status, v["service"].as_str()),
        (StatusCode::OK, Some("logs"))
    );
    assert_eq!(v["bytes"], 2);

    let (status, v, _) = Req::new("POST", "/", b"Action=GetCallerIdentity")
        .signed("sts", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(
        (status, v["service"].as_str()),
        (StatusCode::OK, Some("sts"))
    );
}

#[tokio::test]
async fn a_scope_for_another_service_or_region_is_refused_as_aws_refuses_it() {
    let (app, _) = gateway(false);
    // Signed for lambda, sent to Logs' target.
    let (status, v, headers) = Req::new("POST", "/", b"{}")
        .header("x-amz-target", "Logs_20140328.DescribeLogGroups")
        .signed("lambda", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-amzn-ErrorType"], "InvalidSignatureException");
    assert_eq!(
        v["__type"], "InvalidSignatureException",
        "Logs' envelope: {v}"
    );
    assert_eq!(
        v["message"],
        "Credential should be scoped to correct service: 'logs'. "
    );

    let (status, v, _) = Req::new("GET", "/2015-03-31/functions/", b"")
        .signed("lambda", "eu-west-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["Type"], "User", "Lambda's envelope: {v}");
    assert!(
        v["message"].as_str().unwrap().contains("'eu-west-1'"),
        "{v}"
    );
}

#[tokio::test]
async fn a_service_stratus_does_not_offer_is_named_in_a_4xx() {
    let (app, _) = gateway(false);
    let (status, v, headers) = Req::new("GET", "/bucket/key", b"")
        .signed("s3", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-amzn-ErrorType"], "UnknownServiceException");
    // In S3's own envelope (rest-xml), so its clients can read it.
    let msg = v.as_str().unwrap();
    assert!(
        msg.contains("<Code>UnknownServiceException</Code>"),
        "{msg}"
    );
    assert!(
        msg.contains("&quot;s3&quot;") && msg.contains("lambda, logs, sts"),
        "{msg}"
    );

    // A query-protocol service (IAM): the query envelope.
    let (status, v, _) = Req::new("POST", "/", b"Action=ListUsers")
        .header("content-type", "application/x-www-form-urlencoded")
        .signed("iam", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v.as_str().unwrap().contains("<ErrorResponse>"), "{v}");

    let (status, v, _) = Req::new("POST", "/", b"{}")
        .header("x-amz-target", "AmazonSQS.ListQueues")
        .signed("sqs", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("AmazonSQS"), "{v}");
}

#[tokio::test]
async fn bad_credentials_are_refused_before_the_body_is_read() {
    let (app, _) = gateway(false);
    // A body that never ends: a refusal that answers at all did not wait for it.
    let pending = || Body::new(Pending);
    for req in [
        Req::new("POST", "/2015-03-31/functions", b"").signed("lambda", "us-east-1", "AKIDUNKNOWN"),
        Req::new("POST", "/2015-03-31/functions", b""),
    ] {
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            app.clone().oneshot(req.build(pending())),
        )
        .await
        .expect("answered without reading the body")
        .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    // A declared length over the service's limit is refused before reading, too.
    let req = Req::new("POST", "/2015-03-31/functions", b"")
        .header("content-length", "5000")
        .signed("lambda", "us-east-1", KEY);
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        app.clone().oneshot(req.build(pending())),
    )
    .await
    .expect("answered without reading the body")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A good key with a client that stops sending: cut off after the idle timeout.
    let req = Req::new("POST", "/2015-03-31/functions", b"").signed("lambda", "us-east-1", KEY);
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        app.clone().oneshot(req.build(pending())),
    )
    .await
    .expect("a stalled body is given up")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn bodies_share_one_memory_budget() {
    // Room for 1,500 body bytes at once.
    let (app, _) = gateway_with(false, 1500);
    let declared = |n: usize| {
        Req::new("POST", "/2015-03-31/functions", b"")
            .header("content-length", &n.to_string())
            .signed("lambda", "us-east-1", KEY)
    };
    // A client that declares 1,000 bytes and sends them slowly holds them while it is read...
    let sent = Arc::new(AtomicUsize::new(0));
    let dribble = Dribble(
        tokio::time::interval(Duration::from_millis(50)),
        sent.clone(),
    );
    let holder = tokio::spawn(
        app.clone()
            .oneshot(declared(1000).build(Body::new(dribble))),
    );
    // Its bytes are read only once its share is taken.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the holder's body was never read"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...so 800 more wait, then are refused with a throttling error (botocore retries it),
    // before a byte of theirs is read.
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        app.clone().oneshot(declared(800).build(Body::new(Pending))),
    )
    .await
    .expect("answered without reading the body")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // A body without a declared length is counted piece by piece: 400 bytes fit.
    let (status, v, _) = Req::new("POST", "/2015-03-31/functions", &[b'x'; 400])
        .signed("lambda", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["bytes"], 400);
    // Once the holder is gone, its share is free again.
    holder.abort();
    assert!(holder.await.unwrap_err().is_cancelled());
    let (status, v, _) = Req::new("POST", "/2015-03-31/functions", &[b'x'; 800])
        .header("content-length", "800")
        .signed("lambda", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// A body that sends one byte per tick of its interval, forever.
struct Dribble(tokio::time::Interval, Arc<AtomicUsize>);

impl http_body::Body for Dribble {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        let tick = self.0.poll_tick(cx);
        tick.map(|_| {
            self.1.fetch_add(1, Ordering::SeqCst);
            Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(b"x"))))
        })
    }
}

/// A body that never yields a byte and never ends.
struct Pending;

impl http_body::Body for Pending {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_too_large_body_is_refused() {
    let (app, _) = gateway(false);
    let (status, v, _) = Req::new("POST", "/2015-03-31/functions", &[b'x'; 1001])
        .signed("lambda", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}

#[tokio::test]
async fn health_lists_every_service_and_reset_needs_test_mode() {
    let (app, logs) = gateway(false);
    let (status, v, _) = Req::new("GET", "/_stratus/health", b"").send(&app).await;
    assert_eq!(status, StatusCode::OK);
    for s in ["lambda", "logs", "sts"] {
        assert_eq!(v["services"][s], "ready", "{v}");
    }
    // Off by default: the reset path is an ordinary (unsigned, refused) request.
    let (status, _, _) = Req::new("POST", "/_stratus/reset", b"").send(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(logs.resets.load(Ordering::SeqCst), 0);

    let (app, logs) = gateway(true);
    for path in ["/_stratus/reset", "/moto-api/reset"] {
        let (status, _, _) = Req::new("POST", path, b"").send(&app).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(logs.resets.load(Ordering::SeqCst), 2);
}

/// Records what the gateway reports.
#[derive(Default)]
struct Samples(std::sync::Mutex<Vec<(String, String, u16)>>);

impl RequestObserver for Samples {
    fn observe(&self, s: &RequestSample<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((s.service.into(), s.operation.into(), s.status));
    }
}

/// Names its operation in the response, as a REST service does.
struct Named;

impl Service for Named {
    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            signing_name: "lambda",
            protocol: Protocol::RestJson,
            targets: &[],
            body: BodyPolicy::Buffered { limit: 1000 },
        }
    }

    fn handle(&self, _: AwsRequest) -> BoxFuture<Response> {
        Box::pin(async {
            let mut r = axum::Json(serde_json::json!({"service": "named"})).into_response();
            r.extensions_mut().insert(Operation("ListFunctions"));
            r
        })
    }
}

#[tokio::test]
async fn fixed_routes_answer_unsigned_requests_and_services_are_observed_by_operation() {
    let samples = Arc::new(Samples::default());
    let app = Gateway::new(
        Arc::new(TestKeys),
        GatewayOptions {
            region: "us-east-1".into(),
            test_mode: false,
            body_idle_timeout: Duration::from_millis(200),
            body_memory: 1 << 20,
        },
    )
    .register(Arc::new(Named))
    .register(echo("logs", Protocol::Json11, &["Logs_20140328"]))
    .fixed("/metrics", || async { "metrics text" })
    .observe(samples.clone())
    .app();

    let (status, v, _) = Req::new("GET", "/metrics", b"").send(&app).await;
    assert_eq!((status, v), (StatusCode::OK, "metrics text".into()));
    // Signed, the same path belongs to the service the signature names.
    let (status, v, _) = Req::new("GET", "/metrics", b"")
        .signed("lambda", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!((status, &v["service"]), (StatusCode::OK, &"named".into()));
    // Another method on a fixed path is an ordinary request.
    let (status, _, _) = Req::new("POST", "/metrics", b"").send(&app).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _, _) = Req::new("POST", "/", b"{}")
        .header("x-amz-target", "Logs_20140328.DescribeLogGroups")
        .signed("logs", "us-east-1", KEY)
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = samples.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("lambda".into(), "ListFunctions".into(), 200),
            ("".into(), "".into(), 403),
            ("logs".into(), "DescribeLogGroups".into(), 200),
        ],
        "fixed routes are not observed; refusals are"
    );
}

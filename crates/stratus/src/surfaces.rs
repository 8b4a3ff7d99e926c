//! Stratus's own HTTP surfaces over the metering service: `GET /_stratus/usage` (a service
//! named `stratus` behind the gateway's SigV4 authentication, root key only) and the
//! Prometheus exposition at `GET /_stratus/metrics` and `GET /metrics` (unauthenticated,
//! like health: they carry counts, durations and function names, no payloads or ids).
//!
//! Why usage is authenticated and metrics are not: usage is an account's bill, and every
//! function can reach this API from inside its sandbox (on its own loopback, so a
//! "loopback only" rule would let any function read it); the functions' session key is
//! refused here, only the root key is accepted. Metrics are what a Prometheus scrapes,
//! and scrapers rarely sign requests; bind the server to a private address (the default,
//! 127.0.0.1) if function names are not to be seen.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use stratus_gateway::{RequestObserver, RequestSample};
use stratus_metering::{Metering, PlatformGauges, UsageQuery};
use stratus_protocol::{
    AwsError, AwsRequest, BodyPolicy, BoxFuture, Operation, Protocol, Service, ServiceInfo,
};

/// The SigV4 service name `/_stratus/usage` requests are signed for.
pub const SIGNING_NAME: &str = "stratus";
pub const USAGE_PATH: &str = "/_stratus/usage";

/// `GET /_stratus/usage?since=<RFC 3339 or epoch ms>&function=<name>`, as a gateway service.
pub struct UsageApi {
    pub metering: Metering,
}

impl Service for UsageApi {
    fn info(&self) -> ServiceInfo {
        ServiceInfo {
            signing_name: SIGNING_NAME,
            protocol: Protocol::RestJson,
            targets: &[],
            body: BodyPolicy::Buffered { limit: 0 },
        }
    }

    fn handle(&self, req: AwsRequest) -> BoxFuture<Response> {
        let metering = self.metering.clone();
        Box::pin(async move {
            let id = req.request_id.clone();
            let mut resp = match usage(metering, req).await {
                Ok(r) => r,
                Err(e) => e.render(Protocol::RestJson, &id),
            };
            resp.extensions_mut().insert(Operation("GetUsage"));
            resp
        })
    }
}

async fn usage(metering: Metering, req: AwsRequest) -> Result<Response, AwsError> {
    if req.parts.method != axum::http::Method::GET || req.parts.uri.path() != USAGE_PATH {
        return Err(AwsError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("The stratus service answers only GET {USAGE_PATH}."),
        ));
    }
    if !req.caller.arn.ends_with(":root") {
        return Err(AwsError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "{} is not authorized to read usage: only the account's root key is.",
                req.caller.arn
            ),
        ));
    }
    let query = parse_query(req.parts.uri.query().unwrap_or(""))?;
    let report = tokio::task::spawn_blocking(move || metering.usage(&query))
        .await
        .map_err(AwsError::internal)?
        .map_err(AwsError::internal)?;
    Ok((StatusCode::OK, axum::Json(report)).into_response())
}

fn parse_query(raw: &str) -> Result<UsageQuery, AwsError> {
    let mut q = UsageQuery::default();
    for (k, v) in form_pairs(raw) {
        match k.as_str() {
            "since" if !v.is_empty() => q.since_ms = parse_time(&v)?,
            "function" if !v.is_empty() => q.function = Some(v),
            _ => {}
        }
    }
    Ok(q)
}

fn form_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.split('&').filter(|p| !p.is_empty()).map(move |p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (decode(k), decode(v))
    })
}

/// Milliseconds since the epoch, from digits (epoch ms) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<u64, AwsError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| invalid_time(s));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid_time(s))?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| invalid_time(s))
}

fn invalid_time(s: &str) -> AwsError {
    AwsError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        format!("since must be an RFC 3339 time or milliseconds since the epoch, not {s:?}"),
    )
}

/// Reports the gateway's request timings to metering.
pub struct Observer(pub Metering);

impl RequestObserver for Observer {
    fn observe(&self, s: &RequestSample<'_>) {
        self.0
            .observe_request(s.service, s.operation, s.status, s.elapsed);
    }
}

/// Reads the platform's gauges at scrape time.
pub type GaugeSource = Arc<dyn Fn() -> PlatformGauges + Send + Sync>;

/// The handler of `GET /_stratus/metrics` and `GET /metrics`.
pub fn metrics_handler(
    metering: Metering,
    gauges: GaugeSource,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || {
        let text = metering.render_metrics(gauges());
        std::future::ready(([(header::CONTENT_TYPE, Metering::CONTENT_TYPE)], text).into_response())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn since_is_epoch_ms_or_rfc3339() {
        assert_eq!(parse_time("1700000000123").unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
            1_700_000_000_500
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
        let q = parse_query("since=1000&function=my%2Dfn&other=x").unwrap();
        assert_eq!((q.since_ms, q.function.as_deref()), (1000, Some("my-fn")));
    }
}

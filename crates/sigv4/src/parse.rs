//! Reading the signature's parts out of a request: the `Authorization` header or the
//! presigned query parameters, the credential scope, and the signing time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::canonical::{ALGORITHM, format_amz_date, query_pairs};
use crate::{AuthError, SignedRequest};

/// The longest a presigned URL may live: seven days.
const MAX_EXPIRES: u64 = 604_800;

/// A request's claimed signature, parsed and checked for form (not yet for validity).
#[derive(Debug)]
pub(crate) struct Authentication {
    pub access_key_id: String,
    /// Credential scope date, `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case, in the client's order.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// The signing time as signed, `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    pub signed_at: SystemTime,
    /// Whether this is the presigned (query) form.
    pub presigned: bool,
    /// A presigned URL's lifetime (`X-Amz-Expires`).
    pub expires: Option<Duration>,
}

impl Authentication {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    /// Header-signed requests must be within `max_skew` of `now`, either way (AWS's replay
    /// window). Presigned URLs live from their date until `X-Amz-Expires` later, and may be
    /// dated at most `max_skew` ahead of `now`.
    pub fn check_time(&self, now: SystemTime, max_skew: Duration) -> Result<(), AuthError> {
        let age = now.duration_since(self.signed_at).ok();
        let ahead = self.signed_at.duration_since(now).ok();
        let minutes = max_skew.as_secs() / 60;
        if let Some(expires) = self.expires {
            if age.is_some_and(|age| age > expires) {
                return Err(AuthError::Expired("Request has expired".to_owned()));
            }
            if ahead.is_some_and(|ahead| ahead > max_skew) {
                return Err(AuthError::Expired("Request is not yet valid".to_owned()));
            }
            return Ok(());
        }
        if age.is_some_and(|age| age > max_skew) {
            return Err(AuthError::Expired(format!(
                "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
                self.amz_date,
                format_time(now.checked_sub(max_skew)),
                format_amz_date(now),
            )));
        }
        if ahead.is_some_and(|ahead| ahead > max_skew) {
            return Err(AuthError::Expired(format!(
                "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
                self.amz_date,
                format_time(now.checked_add(max_skew)),
                format_amz_date(now),
            )));
        }
        Ok(())
    }
}

fn format_time(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "?".to_owned(), format_amz_date)
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError::Incomplete(message.into())
}

/// The first value of header `name` as trimmed text. Bytes that are not UTF-8 become
/// U+FFFD, which no date or hash contains, so such a value is refused where it is used.
pub(crate) fn header_text(req: &SignedRequest<'_>, name: &str) -> Option<String> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
}

/// Finds and parses the request's signature, in whichever form it came.
pub(crate) fn authentication(req: &SignedRequest<'_>) -> Result<Authentication, AuthError> {
    let mut auth_headers = req
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| *v);
    let auth_header = auth_headers.next();
    if auth_headers.next().is_some() {
        // Two signatures are ambiguous; refuse rather than pick one.
        return Err(incomplete("Only one Authorization header is allowed."));
    }
    let presigned = query_pairs(req.raw_query).any(|(k, _)| k == b"X-Amz-Algorithm");
    match (auth_header, presigned) {
        (Some(_), true) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        )),
        (Some(value), false) => header_authentication(req, value),
        (None, true) => query_authentication(req),
        (None, false) => Err(AuthError::Missing),
    }
}

/// `AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=hex`. The parameters may be separated by commas,
/// whitespace or both, since clients differ; none of their values can contain either.
fn header_authentication(
    req: &SignedRequest<'_>,
    value: &[u8],
) -> Result<Authentication, AuthError> {
    let value = String::from_utf8_lossy(value);
    let value = value.trim();
    let (algorithm, params) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm.is_empty() {
        return Err(incomplete("Authorization header cannot be empty: ''"));
    }
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    // Components are separated by commas (whitespace around them is allowed); AWS refuses
    // a header whose components are separated by spaces alone.
    for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (slot, v) = match param.split_once('=') {
            Some(("Credential", v)) => (&mut credential, v),
            Some(("SignedHeaders", v)) => (&mut signed_headers, v),
            Some(("Signature", v)) => (&mut signature, v),
            _ => {
                return Err(incomplete(format!(
                    "Authorization header requires each component to be of the form \
                     key=value, with key one of Credential, SignedHeaders, Signature: \
                     '{param}'. Authorization={value}"
                )));
            }
        };
        if slot.replace(v).is_some() {
            return Err(incomplete(format!(
                "Authorization header has a repeated component: '{param}'. Authorization={value}"
            )));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        let mut message = String::new();
        for (name, part) in [
            ("Credential", credential),
            ("Signature", signature),
            ("SignedHeaders", signed_headers),
        ] {
            if part.is_none() {
                message.push_str(&format!(
                    "Authorization header requires '{name}' parameter. "
                ));
            }
        }
        message.push_str(&format!("Authorization={value}"));
        return Err(incomplete(message));
    };
    let scope = parse_credential(credential)?;

    // The signing time: X-Amz-Date, or else the HTTP Date header (RFC 1123), which some
    // clients sign instead.
    let amz_date = match header_text(req, "x-amz-date") {
        Some(date) => date,
        None => {
            let date = header_text(req, "date").ok_or_else(|| {
                incomplete(format!(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header. Authorization={value}"
                ))
            })?;
            let parsed =
                time::OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc2822)
                    .ok()
                    .and_then(|dt| u64::try_from(dt.unix_timestamp()).ok())
                    .ok_or_else(|| bad_date(&date))?;
            format_amz_date(UNIX_EPOCH + Duration::from_secs(parsed))
        }
    };
    finish(scope, signed_headers, signature.to_owned(), amz_date, None)
}

/// The presigned form: `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
/// `X-Amz-Expires`, `X-Amz-SignedHeaders` and `X-Amz-Signature` in the query.
fn query_authentication(req: &SignedRequest<'_>) -> Result<Authentication, AuthError> {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = query_pairs(req.raw_query).collect();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let required = |name: &str| {
        param(name).ok_or_else(|| {
            incomplete(format!(
                "AWS query-string parameters must include '{name}'. \
                 Re-examine the query-string parameters."
            ))
        })
    };
    let algorithm = required("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(algorithm));
    }
    let credential = required("X-Amz-Credential")?;
    let signed_headers = required("X-Amz-SignedHeaders")?;
    let signature = required("X-Amz-Signature")?;
    let amz_date = required("X-Amz-Date")?;
    let expires = required("X-Amz-Expires")?;
    let expires: u64 = expires
        .parse()
        .map_err(|_| incomplete(format!("X-Amz-Expires should be a number: '{expires}'")))?;
    if expires > MAX_EXPIRES {
        return Err(incomplete(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}"
        )));
    }
    let scope = parse_credential(&credential)?;
    finish(
        scope,
        &signed_headers,
        signature,
        amz_date,
        Some(Duration::from_secs(expires)),
    )
}

/// `AKID/YYYYMMDD/region/service/aws4_request`.
struct Scope {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

fn parse_credential(credential: &str) -> Result<Scope, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"]
            if !key.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
                && !service.is_empty() =>
        {
            Ok(Scope {
                access_key_id: (*key).to_owned(),
                date: (*date).to_owned(),
                region: (*region).to_owned(),
                service: (*service).to_owned(),
            })
        }
        [.., terminator] if parts.len() == 5 && *terminator != "aws4_request" => {
            Err(incomplete(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', \
                 not '{terminator}'."
            )))
        }
        _ => Err(incomplete(format!(
            "Credential should be of the form \
             <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request: '{credential}'."
        ))),
    }
}

fn bad_date(date: &str) -> AuthError {
    incomplete(format!(
        "Date must be in ISO-8601 'basic format'. Got '{date}'. \
         See http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

/// `YYYYMMDDTHHMMSSZ`, strictly: no signs, no extra digits, no offsets.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let shape_ok = s.len() == 16
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let dt = time::PrimitiveDateTime::parse(s, &format)
        .ok()?
        .assume_utc();
    let secs = u64::try_from(dt.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn finish(
    scope: Scope,
    signed_headers: &str,
    signature: String,
    amz_date: String,
    expires: Option<Duration>,
) -> Result<Authentication, AuthError> {
    let signed_at = parse_amz_date(&amz_date).ok_or_else(|| bad_date(&amz_date))?;
    if amz_date.get(..8) != Some(scope.date.as_str()) {
        return Err(incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{amz_date}'.",
            scope.date,
            amz_date.get(..8).unwrap_or_default(),
        )));
    }
    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(incomplete(format!(
            "SignedHeaders must be a ';'-separated list of header names: '{}'",
            signed_headers.join(";")
        )));
    }
    // Without Host a signature could be replayed against another endpoint.
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(Authentication {
        access_key_id: scope.access_key_id,
        date: scope.date,
        region: scope.region,
        service: scope.service,
        signed_headers,
        signature,
        amz_date,
        signed_at,
        presigned: expires.is_some(),
        expires,
    })
}

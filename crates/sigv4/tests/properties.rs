//! Properties: no input makes `verify` (or `sign`) panic, junk is always refused, and
//! whatever `sign` or `presign_query` produce, `verify` accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::OwnedRequest as Junk;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use stratus_sigv4::{
    AuthError, SecretLookup, SigningParams, VerifyOptions, presign_query, sign, uri_encode, verify,
};

/// Knows every key, so that junk gets as far as the signature check.
struct AnyKey;
impl SecretLookup for AnyKey {
    fn secret_access_key(&self, _: &str) -> Option<String> {
        Some("secret".to_owned())
    }
}

/// 2024-01-01T00:00:00Z, the date the near-valid junk claims.
const T0: u64 = 1_704_067_200;
/// 9999-12-31T23:59:59Z, the last time a SigV4 date can name.
const LAST: u64 = 253_402_300_799;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// Authorization values from pure noise to well-formed with a wrong signature.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    let part = "[ -~]{0,12}";
    prop_oneof![
        bytes(200),
        any::<String>().prop_map(|s| format!("AWS4-HMAC-SHA256 {s}").into_bytes()),
        (part, part, part, part, part, "[0-9a-f]{0,70}").prop_map(
            |(key, date, region, signed, extra, sig)| format!(
                "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/lambda/aws4_request{extra}, \
                 SignedHeaders={signed}, Signature={sig}"
            )
            .into_bytes()
        ),
        "[0-9a-f]{64}".prop_map(|sig| format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/lambda/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={sig}"
        )
        .into_bytes()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (
            prop_oneof![any::<String>(), "[0-9]{1,7}"],
            any::<String>(),
            "[0-9a-f]{0,64}"
        )
            .prop_map(|(expires, extra, sig)| {
                format!(
                    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1\
                 %2Flambda%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires={expires}\
                 &X-Amz-SignedHeaders=host&{extra}&X-Amz-Signature={sig}"
                )
            }),
    ]
}

fn junk() -> impl Strategy<Value = Junk> {
    (
        any::<String>(),
        any::<String>(),
        query(),
        vec((any::<String>(), bytes(64)), 0..6),
        proptest::option::of(authorization()),
        proptest::option::of(prop_oneof![
            Just(b"20240101T000000Z".to_vec()),
            "[0-9TZ+-]{0,20}".prop_map(String::into_bytes),
            bytes(20),
        ]),
        bytes(256),
    )
        .prop_map(|(method, path, query, mut headers, auth, date, body)| {
            headers.push(("Host".into(), b"localhost".to_vec()));
            if let Some(auth) = auth {
                headers.push(("Authorization".into(), auth));
            }
            if let Some(date) = date {
                headers.push(("X-Amz-Date".into(), date));
            }
            Junk {
                method,
                path,
                query,
                headers,
                body,
            }
        })
}

fn time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0..=LAST).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        (T0 - 3600..T0 + 3600).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
    ]
}

fn options() -> impl Strategy<Value = VerifyOptions> {
    (any::<bool>(), any::<bool>(), any::<u64>()).prop_map(|(double, normalize, skew)| {
        VerifyOptions {
            double_encode_path: double,
            normalize_path: normalize,
            max_skew: Duration::from_secs(skew),
        }
    })
}

/// Header names as HTTP allows them (tokens), but none that signing itself sets.
fn header_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}".prop_filter("set by the signer", |n| {
        !["authorization", "x-amz-date", "x-amz-content-sha256"]
            .iter()
            .any(|s| n.eq_ignore_ascii_case(s))
    })
}

/// Paths as clients send them (segments URI-encoded), or any text at all.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<String>(), 0..5).prop_map(|segments| {
            segments
                .iter()
                .map(|s| format!("/{}", uri_encode(s.as_bytes(), false)))
                .collect()
        }),
        vec(
            prop_oneof![Just("/"), Just("."), Just(".."), Just("a"), Just("%2F")],
            0..10
        )
        .prop_map(|parts| parts.concat()),
        any::<String>(),
    ]
}

/// Queries as clients send them (keys and values URI-encoded), or any text at all.
fn signable_query() -> impl Strategy<Value = String> {
    prop_oneof![
        vec((any::<String>(), any::<String>()), 0..5).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        uri_encode(k.as_bytes(), false),
                        uri_encode(v.as_bytes(), false)
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
        }),
        any::<String>().prop_filter("not presigned", |q| !q.contains("X-Amz-Algorithm")),
    ]
}

fn params(time: SystemTime) -> SigningParams<'static> {
    SigningParams {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "secret",
        region: "us-east-1",
        service: "lambda",
        time,
    }
}

/// A request `sign` has signed.
fn signed_request() -> impl Strategy<Value = (Junk, SystemTime, VerifyOptions)> {
    (
        "[A-Z]{1,8}",
        path(),
        signable_query(),
        vec((header_name(), bytes(48)), 0..5),
        bytes(256),
        time(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(method, path, query, mut headers, body, time, double, normalize)| {
                headers.push(("Host".into(), b"localhost:4566".to_vec()));
                let opts = VerifyOptions {
                    double_encode_path: double,
                    normalize_path: normalize,
                    ..VerifyOptions::default()
                };
                let mut req = Junk {
                    method,
                    path,
                    query,
                    headers,
                    body,
                };
                let added = req.with(|r| sign(r, &params(time), &opts));
                for (name, value) in added {
                    req.headers.push((name.into(), value.into_bytes()));
                }
                (req, time, opts)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn junk_never_panics_and_is_refused(req in junk(), now in time(), opts in options()) {
        let result = req.with(|r| verify(r, &AnyKey, now, &opts));
        prop_assert!(result.is_err(), "{result:?}");
        // Signing junk must not panic either.
        let _ = req.with(|r| sign(r, &params(now), &opts));
    }

    #[test]
    fn sign_then_verify_round_trips((req, time, opts) in signed_request()) {
        let result = req.with(|r| verify(r, &AnyKey, time, &opts));
        prop_assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn presign_then_verify_round_trips(
        path in path(),
        host in "[a-z0-9.:-]{1,30}",
        expires in 0..=604_800u64,
        time in time(),
        after in any::<Index>(),
    ) {
        let query = presign_query("GET", &host, &path, expires, &params(time));
        let req = Junk {
            method: "GET".into(),
            path,
            query,
            headers: vec![("host".into(), host.into_bytes())],
            body: Vec::new(),
        };
        let now = time + Duration::from_secs(after.index(usize::try_from(expires).unwrap() + 1) as u64);
        let result = req.with(|r| verify(r, &AnyKey, now, &VerifyOptions::default()));
        prop_assert!(result.is_ok(), "{result:?}");
    }

    /// One byte of a signed request changed: never a panic, and a changed body is refused.
    #[test]
    fn mutated_requests_never_panic(
        (req, time, opts) in signed_request(),
        target in 0..5usize,
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let mut req = req;
        let body_changed = match target {
            0 if !req.body.is_empty() => {
                let i = at.index(req.body.len());
                req.body[i] ^= byte | 1;
                true
            }
            1 | 2 => {
                let name = if target == 1 { "authorization" } else { "x-amz-date" };
                let (_, value) = req
                    .headers
                    .iter_mut()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .unwrap();
                let i = at.index(value.len());
                value[i] = byte;
                false
            }
            3 => {
                let mut chars: Vec<char> = req.query.chars().collect();
                chars.insert(at.index(chars.len() + 1), char::from(byte));
                req.query = chars.into_iter().collect();
                false
            }
            _ => {
                let mut chars: Vec<char> = req.path.chars().collect();
                chars.insert(at.index(chars.len() + 1), char::from(byte));
                req.path = chars.into_iter().collect();
                false
            }
        };
        let result = req.with(|r| verify(r, &AnyKey, time, &opts));
        if body_changed {
            prop_assert_eq!(result, Err(AuthError::SignatureMismatch));
        }
    }
}

//! `verify`'s refusals and tolerances, through the public API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

// An owned request a test can sign and then tamper with.
use common::OwnedRequest as Req;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stratus_sigv4::{
    AuthError, Claim, SigningParams, Verified, VerifyOptions, canonical_request, presign_query,
    sha256_hex, sign, signature, signing_key, string_to_sign, verify,
};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn secrets() -> HashMap<String, String> {
    HashMap::from([(KEY_ID.to_owned(), SECRET.to_owned())])
}

fn params(time: SystemTime) -> SigningParams<'static> {
    SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "us-east-1",
        service: "lambda",
        time,
    }
}

impl Req {
    fn new() -> Req {
        Req {
            method: "POST".into(),
            path: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/invocations"
                .into(),
            query: "Qualifier=%24LATEST&x=a%20b".into(),
            headers: vec![
                ("Host".into(), b"localhost:4566".to_vec()),
                ("Content-Type".into(), b"application/json".to_vec()),
            ],
            body: br#"{"hello":"world"}"#.to_vec(),
        }
    }

    fn signed_with(mut self, time: SystemTime, opts: &VerifyOptions) -> Req {
        let added = self.with(|r| sign(r, &params(time), opts));
        for (name, value) in added {
            self.headers.push((name.into(), value.into_bytes()));
        }
        self
    }

    fn signed(self, time: SystemTime) -> Req {
        self.signed_with(time, &VerifyOptions::default())
    }

    fn verify_with(&self, now: SystemTime, opts: &VerifyOptions) -> Result<Verified, AuthError> {
        self.with(|r| verify(r, &secrets(), now, opts))
    }

    fn verify(&self, now: SystemTime) -> Result<Verified, AuthError> {
        self.verify_with(now, &VerifyOptions::default())
    }

    fn header(&self, name: &str) -> String {
        let (_, v) = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .unwrap();
        String::from_utf8(v.clone()).unwrap()
    }

    fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) -> &mut Req {
        self.remove(name);
        self.headers.push((name.into(), value.into()));
        self
    }

    fn remove(&mut self, name: &str) -> &mut Req {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }
}

fn incomplete(result: Result<Verified, AuthError>) -> String {
    match result {
        Err(AuthError::Incomplete(message)) => message,
        other => panic!("expected Incomplete, got {other:?}"),
    }
}

#[test]
fn a_signed_request_verifies_and_says_who_signed_it() {
    let req = Req::new().signed(at(T0));
    assert_eq!(
        req.verify(at(T0)),
        Ok(Verified {
            access_key_id: KEY_ID.into(),
            date: "20240101".into(),
            region: "us-east-1".into(),
            service: "lambda".into(),
        })
    );
}

#[test]
fn no_signature_at_all_is_missing_authentication() {
    let req = Req::new();
    assert_eq!(req.verify(at(T0)), Err(AuthError::Missing));
    assert_eq!(
        AuthError::Missing.aws_code(),
        "MissingAuthenticationTokenException"
    );
    // A stray X-Amz-Signature without X-Amz-Algorithm is no signature either.
    let mut req = Req::new();
    req.query = "X-Amz-Signature=00".into();
    assert_eq!(req.verify(at(T0)), Err(AuthError::Missing));
}

#[test]
fn an_unknown_access_key_is_unrecognized() {
    let req = Req::new().signed(at(T0));
    let result = req.with(|r| verify(r, &HashMap::new(), at(T0), &VerifyOptions::default()));
    assert_eq!(result, Err(AuthError::UnknownAccessKey));
    let e = result.unwrap_err();
    assert_eq!(e.aws_code(), "UnrecognizedClientException");
    assert_eq!(
        e.to_string(),
        "The security token included in the request is invalid."
    );
}

#[test]
fn a_wrong_secret_is_a_signature_mismatch() {
    let other = HashMap::from([(KEY_ID.to_owned(), "not the secret".to_owned())]);
    let req = Req::new().signed(at(T0));
    let e = req
        .with(|r| verify(r, &other, at(T0), &VerifyOptions::default()))
        .unwrap_err();
    assert_eq!(e, AuthError::SignatureMismatch);
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    assert_eq!(
        e.to_string(),
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    );
}

/// A change made to a signed request.
type Tamper = fn(&mut Req);

#[test]
fn any_change_to_what_was_signed_is_a_signature_mismatch() {
    let signed = Req::new().signed(at(T0));
    let tampered: [(&str, Tamper); 10] = [
        ("method", |r| r.method = "PUT".into()),
        ("path", |r| r.path.push('x')),
        ("query value", |r| r.query = r.query.replace("b", "c")),
        ("query added", |r| r.query.push_str("&y=1")),
        ("body", |r| r.body.push(b' ')),
        ("signed header", |r| {
            r.set("content-type", "text/plain");
        }),
        ("signed header repeated", |r| {
            r.headers.push(("Content-Type".into(), b"x".to_vec()));
        }),
        ("host", |r| {
            r.set("host", "elsewhere:4566");
        }),
        ("date", |r| {
            r.set("x-amz-date", "20240101T000001Z");
        }),
        ("signature", |r| {
            let auth = r
                .header("authorization")
                .replace("Signature=", "Signature=0");
            r.set("authorization", auth);
        }),
    ];
    for (what, change) in tampered {
        let mut req = signed.clone();
        change(&mut req);
        assert_eq!(
            req.verify(at(T0)),
            Err(AuthError::SignatureMismatch),
            "{what}"
        );
    }
    // What was not signed may change.
    let mut req = signed.clone();
    req.headers.push(("User-Agent".into(), b"curl".to_vec()));
    req.set("X-Amz-Security-Token", "unsigned");
    assert!(req.verify(at(T0)).is_ok());
    // Header names are case-insensitive, values are trimmed and spaces collapsed.
    let mut req = signed.clone();
    req.remove("content-type");
    req.headers
        .push(("CONTENT-TYPE".into(), b"  application/json ".to_vec()));
    assert!(req.verify(at(T0)).is_ok());
    // The signature's hex digits may come in upper case.
    let mut req = signed;
    let auth = req.header("authorization");
    let (head, sig) = auth.rsplit_once("Signature=").unwrap();
    req.set(
        "authorization",
        format!("{head}Signature={}", sig.to_uppercase()),
    );
    assert!(req.verify(at(T0)).is_ok());
}

#[test]
fn more_than_fifteen_minutes_of_skew_either_way_has_expired() {
    let req = Req::new().signed(at(T0));
    for secs in [0, 14 * 60, 15 * 60] {
        assert!(req.verify(at(T0 + secs)).is_ok(), "{secs}s late");
        assert!(req.verify(at(T0 - secs)).is_ok(), "{secs}s early");
    }

    let late = req.verify(at(T0 + 16 * 60)).unwrap_err();
    assert_eq!(
        late,
        AuthError::Expired(
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000100Z \
             (20240101T001600Z - 15 min.)"
                .into()
        )
    );
    assert_eq!(late.aws_code(), "InvalidSignatureException");
    assert!(
        late.to_string()
            .starts_with("Signature expired: 20240101T000000Z")
    );

    let early = req.verify(at(T0 - 16 * 60)).unwrap_err();
    assert_eq!(
        early,
        AuthError::Expired(
            "Signature not yet current: 20240101T000000Z is still later than \
             20231231T235900Z (20231231T234400Z + 15 min.)"
                .into()
        )
    );

    // The window is an option.
    let strict = VerifyOptions {
        max_skew: Duration::from_secs(60),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        req.verify_with(at(T0 + 61), &strict),
        Err(AuthError::Expired(_))
    ));
    let lax = VerifyOptions {
        max_skew: Duration::MAX,
        ..VerifyOptions::default()
    };
    assert!(req.verify_with(at(T0 + 86_400 * 365), &lax).is_ok());
    assert!(req.verify_with(UNIX_EPOCH, &lax).is_ok());
}

#[test]
fn the_date_header_stands_in_for_x_amz_date() {
    // Signed by hand with the building blocks: `Date` signed, no X-Amz-Date.
    let mut req = Req::new();
    req.set("Date", "Mon, 01 Jan 2024 00:00:00 GMT");
    let names = ["content-type", "date", "host"];
    let creq = req.with(|r| {
        canonical_request(
            r,
            &names,
            &sha256_hex(r.body),
            false,
            &VerifyOptions::default(),
        )
    });
    let scope = "20240101/us-east-1/lambda/aws4_request";
    let sts = string_to_sign("20240101T000000Z", scope, &creq);
    let sig = signature(
        &signing_key(SECRET, "20240101", "us-east-1", "lambda"),
        &sts,
    );
    req.set(
        "Authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/{scope}, SignedHeaders={}, Signature={sig}",
            names.join(";")
        ),
    );
    assert!(req.verify(at(T0 + 60)).is_ok());
    assert!(matches!(
        req.verify(at(T0 + 3600)),
        Err(AuthError::Expired(_))
    ));

    let mut bad = req.clone();
    bad.set("Date", "yesterday");
    assert!(incomplete(bad.verify(at(T0))).starts_with("Date must be in ISO-8601"));
    let mut none = req;
    none.remove("Date");
    assert!(incomplete(none.verify(at(T0))).starts_with(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    ));
}

#[test]
fn the_scope_date_must_be_the_signing_day() {
    let mut req = Req::new().signed(at(T0));
    let auth = req
        .header("authorization")
        .replace("/20240101/", "/20240102/");
    req.set("authorization", auth);
    assert_eq!(
        incomplete(req.verify(at(T0))),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '20240102' != '20240101', from '20240101T000000Z'."
    );
}

#[test]
fn malformed_x_amz_dates_are_incomplete() {
    for date in [
        "2024-01-01T00:00:00Z",
        "20240101T000000",
        "+20240101T00000Z",
        "20241301T000000Z",
        "",
    ] {
        let mut req = Req::new().signed(at(T0));
        req.set("x-amz-date", date);
        assert!(
            incomplete(req.verify(at(T0))).starts_with("Date must be in ISO-8601"),
            "{date}"
        );
    }
}

#[test]
fn host_must_be_signed() {
    let mut req = Req::new();
    req.remove("host");
    let req = req.signed(at(T0));
    assert!(
        req.header("authorization")
            .contains("SignedHeaders=content-type;x-amz-date,")
    );
    assert_eq!(
        incomplete(req.verify(at(T0))),
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn malformed_authorization_headers_are_refused() {
    let good = Req::new().signed(at(T0));
    let auth = good.header("authorization");
    let cred = format!("Credential={KEY_ID}/20240101/us-east-1/lambda/aws4_request");
    let sig = auth.rsplit_once(", ").unwrap().1.to_owned();
    let incomplete_cases = [
        String::new(),
        "   ".into(),
        "AWS4-HMAC-SHA256".into(),
        format!("AWS4-HMAC-SHA256 {cred}"),
        format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date"),
        format!("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, {sig}"),
        format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=, {sig}"),
        format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, {sig}"),
        format!("AWS4-HMAC-SHA256 {cred}, {cred}, SignedHeaders=host;x-amz-date, {sig}"),
        format!("AWS4-HMAC-SHA256 {cred}, Foo=bar, SignedHeaders=host;x-amz-date, {sig}"),
        format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders, {sig}"),
        format!(
            "AWS4-HMAC-SHA256 Credential = {KEY_ID}/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda/aws5_request, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/2024011/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/2024010x/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential=/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101//lambda/aws4_request, SignedHeaders=host;x-amz-date, {sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/20240101/us-east-1/lambda/aws4_request/x, SignedHeaders=host;x-amz-date, {sig}"
        ),
    ];
    for value in incomplete_cases {
        let mut req = good.clone();
        req.set("authorization", value.clone());
        let result = req.verify(at(T0));
        assert!(
            matches!(result, Err(AuthError::Incomplete(_))),
            "{value:?}: {result:?}"
        );
        assert_eq!(
            result.unwrap_err().aws_code(),
            "IncompleteSignatureException"
        );
    }

    for (value, algorithm) in [
        ("Basic dXNlcjpwYXNz", "Basic"),
        ("AWS AKIDEXAMPLE:c2lnbmF0dXJl", "AWS"),
        (
            "AWS4-ECDSA-P256-SHA256 Credential=x",
            "AWS4-ECDSA-P256-SHA256",
        ),
        ("aws4-hmac-sha256 Credential=x", "aws4-hmac-sha256"),
    ] {
        let mut req = good.clone();
        req.set("authorization", value);
        let e = req.verify(at(T0)).unwrap_err();
        assert_eq!(e, AuthError::UnsupportedAlgorithm(algorithm.into()));
        assert_eq!(e.aws_code(), "IncompleteSignatureException");
    }

    // Not UTF-8: refused, not a panic.
    let mut req = good.clone();
    req.set("authorization", b"AWS4-HMAC-SHA256 \xff\xfe".to_vec());
    assert!(matches!(req.verify(at(T0)), Err(AuthError::Incomplete(_))));

    // Two Authorization headers, or a header and a presigned query, are ambiguous.
    let mut req = good.clone();
    req.headers
        .push(("Authorization".into(), auth.clone().into_bytes()));
    assert!(matches!(req.verify(at(T0)), Err(AuthError::Incomplete(_))));
    let mut req = good;
    req.query.push_str("&X-Amz-Algorithm=AWS4-HMAC-SHA256");
    assert!(incomplete(req.verify(at(T0))).starts_with("Only one auth mechanism allowed"));
}

#[test]
fn authorization_header_spacing_and_commas_vary() {
    let good = Req::new().signed(at(T0));
    let auth = good.header("authorization");
    let parts: Vec<&str> = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .unwrap()
        .split(", ")
        .collect();
    let [cred, signed, sig] = parts[..] else {
        panic!("{auth}")
    };
    for value in [
        format!("AWS4-HMAC-SHA256 {cred},{signed},{sig}"),
        format!("AWS4-HMAC-SHA256   {cred} ,  {signed},\t{sig}  "),
        format!("AWS4-HMAC-SHA256\t{sig}, {signed}, {cred},"),
    ] {
        let mut req = good.clone();
        req.set("authorization", value.clone());
        assert!(req.verify(at(T0)).is_ok(), "{value:?}");
    }
    // Spaces alone do not separate components: AWS refuses such a header.
    let mut req = good.clone();
    req.set(
        "authorization",
        format!("AWS4-HMAC-SHA256 {cred} {signed} {sig}"),
    );
    assert!(matches!(req.verify(at(T0)), Err(AuthError::Incomplete(_))));
}

#[test]
fn payload_hash_header_is_signed_and_checked() {
    let mut req = Req::new();
    req.set("x-amz-content-sha256", sha256_hex(&req.body));
    let signed = req.signed(at(T0));
    assert!(signed.verify(at(T0)).is_ok());

    // A body that does not match its declared hash is refused even though the signature
    // (which covers the hash, not the body) is good.
    let mut swapped = signed.clone();
    swapped.body = b"other".to_vec();
    assert_eq!(swapped.verify(at(T0)), Err(AuthError::SignatureMismatch));

    // UNSIGNED-PAYLOAD and streaming: a whole body is always signed by its hash (AWS
    // accepts these only where bodies stream, S3); a streamed one by the declared value.
    for declared in ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] {
        let mut req = Req::new();
        req.set("x-amz-content-sha256", declared);
        let mut signed = req.signed(at(T0));
        assert_eq!(
            signed.verify(at(T0)),
            Err(AuthError::SignatureMismatch),
            "{declared}"
        );
        let streaming = |r: &Req| {
            r.with(|r| {
                Claim::parse(r)?.verify_streaming(r, &secrets(), at(T0), &VerifyOptions::default())
            })
        };
        assert!(streaming(&signed).is_ok(), "{declared}");
        signed.body = b"anything".to_vec();
        assert!(streaming(&signed).is_ok(), "{declared}");
    }
}

#[test]
fn non_utf8_header_values_are_signed_as_latin1_text() {
    // botocore signs the text `café` and http.client sends it as Latin-1.
    let mut req = Req::new();
    req.set("x-meta", "caf\u{e9}");
    let signed = req.signed(at(T0));
    let mut on_the_wire = signed.clone();
    on_the_wire.set("x-meta", b"caf\xe9".to_vec());
    assert!(signed.verify(at(T0)).is_ok());
    assert!(on_the_wire.verify(at(T0)).is_ok());
}

#[test]
fn s3_paths_are_signed_once_and_not_normalized() {
    let s3 = VerifyOptions {
        double_encode_path: false,
        normalize_path: false,
        ..VerifyOptions::default()
    };
    let mut req = Req::new();
    req.path = "/bucket/a%3Ab//./c".into();
    let signed = req.clone().signed_with(at(T0), &s3);
    assert!(signed.verify_with(at(T0), &s3).is_ok());
    assert_eq!(signed.verify(at(T0)), Err(AuthError::SignatureMismatch));
    let signed = req.signed(at(T0));
    assert_eq!(
        signed.verify_with(at(T0), &s3),
        Err(AuthError::SignatureMismatch)
    );
}

fn presigned(expires: u64) -> Req {
    let mut req = Req::new();
    req.method = "GET".into();
    req.body.clear();
    req.headers.truncate(1);
    req.query = presign_query("GET", "localhost:4566", &req.path, expires, &params(at(T0)));
    req
}

#[test]
fn presigned_urls_verify_until_they_expire() {
    let req = presigned(60);
    assert!(req.verify(at(T0)).is_ok());
    assert!(req.verify(at(T0 + 60)).is_ok());
    // Unsigned payload: the body is not covered.
    let mut with_body = req.clone();
    with_body.body = b"anything".to_vec();
    assert!(with_body.verify(at(T0 + 30)).is_ok());

    let e = req.verify(at(T0 + 61)).unwrap_err();
    assert_eq!(e, AuthError::Expired("Request has expired".into()));
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    assert!(matches!(
        req.verify(at(T0 - 16 * 60)),
        Err(AuthError::Expired(_))
    ));

    // A week is the longest a presigned URL lives.
    assert!(presigned(604_800).verify(at(T0 + 604_800)).is_ok());
    assert!(
        incomplete(presigned(604_801).verify(at(T0)))
            .starts_with("X-Amz-Expires must be less than a week")
    );
}

#[test]
fn presigned_urls_cannot_be_altered() {
    let req = presigned(60);
    for (from, to) in [
        ("X-Amz-Expires=60", "X-Amz-Expires=600"),
        (
            "X-Amz-SignedHeaders=host",
            "X-Amz-SignedHeaders=host&extra=1",
        ),
        ("X-Amz-Signature=", "X-Amz-Signature=0"),
    ] {
        let mut altered = req.clone();
        altered.query = req.query.replace(from, to);
        assert_eq!(
            altered.verify(at(T0)),
            Err(AuthError::SignatureMismatch),
            "{to}"
        );
    }
    let mut other_host = req.clone();
    other_host.set("host", "elsewhere");
    assert_eq!(other_host.verify(at(T0)), Err(AuthError::SignatureMismatch));
    let mut other_path = req;
    other_path.path.push('x');
    assert_eq!(other_path.verify(at(T0)), Err(AuthError::SignatureMismatch));
}

#[test]
fn malformed_presigned_queries_are_refused() {
    let good = presigned(60).query;
    for param in [
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ] {
        let mut req = presigned(60);
        req.query = good
            .split('&')
            .filter(|p| !p.starts_with(param))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            incomplete(req.verify(at(T0))),
            format!(
                "AWS query-string parameters must include '{param}'. \
                 Re-examine the query-string parameters."
            )
        );
    }
    for (from, to) in [
        ("X-Amz-Expires=60", "X-Amz-Expires=-1"),
        ("X-Amz-Expires=60", "X-Amz-Expires=soon"),
        ("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date"),
        ("X-Amz-Date=20240101T000000Z", "X-Amz-Date=20240101"),
        ("%2Faws4_request", "%2Faws4"),
    ] {
        let mut req = presigned(60);
        req.query = good.replace(from, to);
        assert!(
            matches!(req.verify(at(T0)), Err(AuthError::Incomplete(_))),
            "{to}"
        );
    }
    let mut req = presigned(60);
    req.query = good.replace(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Algorithm=AWS4-HMAC-SHA1",
    );
    assert_eq!(
        req.verify(at(T0)),
        Err(AuthError::UnsupportedAlgorithm("AWS4-HMAC-SHA1".into()))
    );
}

#[test]
fn error_codes_and_messages() {
    let cases = [
        (
            AuthError::Missing,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        (
            AuthError::Incomplete("m".into()),
            "IncompleteSignatureException",
            "m",
        ),
        (
            AuthError::UnknownAccessKey,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        (
            AuthError::Expired("Request has expired".into()),
            "InvalidSignatureException",
            "Request has expired",
        ),
        (
            AuthError::UnsupportedAlgorithm("X".into()),
            "IncompleteSignatureException",
            "Unsupported AWS 'algorithm': 'X'.",
        ),
    ];
    for (e, code, message) in cases {
        assert_eq!(e.aws_code(), code);
        assert_eq!(e.to_string(), message);
    }
}

#[test]
fn the_claimed_scope_is_read_before_anything_is_verified() {
    let req = Req::new().signed(at(T0));
    let claimed = req.with(stratus_sigv4::claimed).unwrap();
    assert_eq!(
        (
            claimed.access_key_id.as_str(),
            claimed.region.as_str(),
            claimed.service.as_str()
        ),
        (KEY_ID, "us-east-1", "lambda")
    );
    // Claimed even with a wrong secret or clock: nothing is checked.
    let none: HashMap<String, String> = HashMap::new();
    assert!(req.with(stratus_sigv4::claimed).is_ok());
    assert_eq!(
        req.with(|r| Claim::parse(r)?.precheck(&none, at(T0), &VerifyOptions::default())),
        Err(AuthError::UnknownAccessKey)
    );
    assert!(matches!(
        req.with(|r| Claim::parse(r)?.precheck(
            &secrets(),
            at(T0 + 3600),
            &VerifyOptions::default()
        )),
        Err(AuthError::Expired(_))
    ));
    assert!(
        req.with(|r| Claim::parse(r)?.precheck(&secrets(), at(T0), &VerifyOptions::default()))
            .is_ok()
    );
    assert_eq!(
        Req::new().with(stratus_sigv4::claimed),
        Err(AuthError::Missing)
    );
}

#[test]
fn a_streamed_request_is_verified_against_its_declared_payload_hash() {
    let opts = VerifyOptions::default();
    let mut req = Req::new();
    let hash = sha256_hex(&req.body);
    req.headers
        .push(("x-amz-content-sha256".into(), hash.into_bytes()));
    let req = req.signed(at(T0));
    let streaming =
        |r: &Req| r.with(|r| Claim::parse(r)?.verify_streaming(r, &secrets(), at(T0), &opts));
    assert!(streaming(&req).is_ok());
    // The body is not looked at: it has not arrived yet.
    let mut other_body = Req { ..req.clone() };
    other_body.body = b"not what was hashed".to_vec();
    assert!(streaming(&other_body).is_ok());
    // ...but the declared hash is signed.
    let mut swapped = req.clone();
    for (k, v) in &mut swapped.headers {
        if k == "x-amz-content-sha256" {
            *v = sha256_hex(b"x").into_bytes();
        }
    }
    assert_eq!(streaming(&swapped), Err(AuthError::SignatureMismatch));
    // Without a declared hash there is nothing to verify a streamed request against.
    let plain = Req::new().signed(at(T0));
    assert!(matches!(streaming(&plain), Err(AuthError::Incomplete(_))));
}

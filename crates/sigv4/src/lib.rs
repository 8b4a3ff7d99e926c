//! AWS Signature Version 4, server side.
//!
//! This crate owns the verification of SigV4-signed requests, in both forms AWS clients
//! use: the `Authorization` header and presigned query parameters (`X-Amz-Signature`). It
//! also signs, so the server can hand out presigned URLs and tests can act as a client.
//!
//! It is pure: a function of the request's bytes, a secret lookup and a clock. It does no
//! I/O and knows no HTTP framework (requests arrive as [`SignedRequest`], plain slices), and
//! it knows nothing of services, operations, accounts or where secrets are stored. Whether
//! the signed region and service are the ones the server expects is for the caller to
//! check, from [`Verified`]. It never panics: every malformed request is an [`AuthError`].
//!
//! ```
//! use std::collections::HashMap;
//! use std::time::SystemTime;
//! use stratus_sigv4::{SignedRequest, SigningParams, VerifyOptions, sign, verify};
//!
//! let now = SystemTime::now();
//! let opts = VerifyOptions::default();
//! let headers: Vec<(&str, &[u8])> = vec![("Host", b"localhost:4566")];
//! let unsigned = SignedRequest {
//!     method: "GET",
//!     raw_path: "/2015-03-31/functions/",
//!     raw_query: "MaxItems=10",
//!     headers: &headers,
//!     body: b"",
//! };
//! let params = SigningParams {
//!     access_key_id: "AKIDEXAMPLE",
//!     secret_access_key: "secret",
//!     region: "us-east-1",
//!     service: "lambda",
//!     time: now,
//! };
//! let [(date_name, date), (auth_name, auth)] = sign(&unsigned, &params, &opts);
//!
//! let mut signed_headers = headers.clone();
//! signed_headers.push((date_name, date.as_bytes()));
//! signed_headers.push((auth_name, auth.as_bytes()));
//! let signed = SignedRequest { headers: &signed_headers, ..unsigned };
//!
//! let secrets = HashMap::from([("AKIDEXAMPLE".to_owned(), "secret".to_owned())]);
//! let who = verify(&signed, &secrets, now, &opts).expect("a request we signed verifies");
//! assert_eq!(who.service, "lambda");
//! ```

mod canonical;
mod parse;
mod sign;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

pub use canonical::{
    ALGORITHM, UNSIGNED_PAYLOAD, canonical_query, canonical_request, canonical_uri,
    format_amz_date, sha256_hex, signature, signing_key, string_to_sign, uri_encode,
};
pub use sign::{SigningParams, presign_query, sign};

/// A request as it arrived on the wire, framework-agnostic.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as it arrived (still percent-encoded), without the query.
    pub raw_path: &'a str,
    /// The raw query string without `?`, as it arrived, or "" if none.
    pub raw_query: &'a str,
    /// Header names (any case) and raw values as bytes; names may repeat.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The request body.
    pub body: &'a [u8],
}

/// How the canonical request is formed, and how much clock skew is tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Non-S3 services: the canonical URI is the normalized path URI-encoded a second time
    /// (what botocore and the AWS SDKs do for every service but S3). S3: single encoding,
    /// the path as sent.
    pub double_encode_path: bool,
    /// Remove `.` and `..` segments and repeated slashes before encoding (every service but
    /// S3).
    pub normalize_path: bool,
    /// Allowed clock skew for header-signed requests (AWS allows 15 minutes). Also how far in
    /// the future a presigned URL's `X-Amz-Date` may be.
    pub max_skew: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            double_encode_path: true,
            normalize_path: true,
            max_skew: Duration::from_secs(15 * 60),
        }
    }
}

/// Looks up the secret for an access key id. Returning `None` means the key is unknown.
pub trait SecretLookup {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String>;

    /// The SigV4 signing key of `access_key_id` for one day, region and service. Derived
    /// from the secret by default; a key ring may keep derived keys, which change only
    /// with the date, to save four HMACs per request.
    fn signing_key(
        &self,
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> Option<[u8; 32]> {
        self.secret_access_key(access_key_id)
            .map(|secret| signing_key(&secret, date, region, service))
    }
}

/// A fixed key ring: access key id to secret.
impl<S: BuildHasher> SecretLookup for HashMap<String, String, S> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self.get(access_key_id).cloned()
    }
}

/// Who signed a request, and for which credential scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    /// The credential scope's date, `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
}

/// Why a request was refused. The `Display` text is the message AWS sends with
/// [`AuthError::aws_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither an `Authorization` header nor an `X-Amz-Algorithm` query parameter.
    #[error("Missing Authentication Token")]
    Missing,
    /// The signature's parts are malformed or missing.
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    )]
    SignatureMismatch,
    /// Too much clock skew, or a presigned URL past its expiry.
    #[error("{0}")]
    Expired(String),
    /// An algorithm other than `AWS4-HMAC-SHA256` (SigV2, SigV4a, ...).
    #[error("Unsupported AWS 'algorithm': '{0}'.")]
    UnsupportedAlgorithm(String),
}

impl AuthError {
    /// The AWS error code for this refusal (all are HTTP 403).
    pub fn aws_code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) | AuthError::UnsupportedAlgorithm(_) => {
                "IncompleteSignatureException"
            }
            AuthError::UnknownAccessKey => "UnrecognizedClientException",
            AuthError::SignatureMismatch | AuthError::Expired(_) => "InvalidSignatureException",
        }
    }
}

/// Verifies `req`'s SigV4 signature, in the header or the presigned-query form.
///
/// Checks run cheapest and most informative first: the form of the signature, the access
/// key, the clock, then the signature itself.
pub fn verify(
    req: &SignedRequest<'_>,
    secrets: &dyn SecretLookup,
    now: SystemTime,
    opts: &VerifyOptions,
) -> Result<Verified, AuthError> {
    let claim = Claim::parse(req)?;
    claim.verify(req, secrets, now, opts)?;
    Ok(claim.into_verified())
}

/// The credential a request claims, read without verifying anything: who says they signed
/// it, when, and for which region and service.
pub fn claimed(req: &SignedRequest<'_>) -> Result<Verified, AuthError> {
    Claim::parse(req).map(Claim::into_verified)
}

/// A request's signature, parsed once and checked in steps: [`Claim::parse`] reads it
/// without verifying anything (the front door routes by its scope before the body is read),
/// [`Claim::precheck`] checks what needs no body (the key is known, the clock), and
/// [`Claim::verify`] or [`Claim::verify_streaming`] checks the signature itself.
#[derive(Debug)]
pub struct Claim(parse::Authentication);

impl Claim {
    /// Finds and parses the request's signature, in whichever form it came.
    pub fn parse(req: &SignedRequest<'_>) -> Result<Claim, AuthError> {
        parse::authentication(req).map(Claim)
    }

    pub fn access_key_id(&self) -> &str {
        &self.0.access_key_id
    }

    /// The credential scope's region.
    pub fn region(&self) -> &str {
        &self.0.region
    }

    /// The credential scope's service (its signing name).
    pub fn service(&self) -> &str {
        &self.0.service
    }

    pub fn into_verified(self) -> Verified {
        Verified {
            access_key_id: self.0.access_key_id,
            date: self.0.date,
            region: self.0.region,
            service: self.0.service,
        }
    }

    /// What can be checked before the body is read: that the access key is known, and the
    /// clock. A request that fails here is refused without reading its body.
    pub fn precheck(
        &self,
        secrets: &dyn SecretLookup,
        now: SystemTime,
        opts: &VerifyOptions,
    ) -> Result<(), AuthError> {
        if secrets.secret_access_key(&self.0.access_key_id).is_none() {
            return Err(AuthError::UnknownAccessKey);
        }
        self.0.check_time(now, opts.max_skew)
    }

    /// Verifies the signature over `req`, whose body is the whole body. A declared
    /// `x-amz-content-sha256` must be the body's hash: `UNSIGNED-PAYLOAD` and the streaming
    /// forms are for services whose bodies stream ([`Claim::verify_streaming`]), as on AWS,
    /// where only S3 accepts them.
    pub fn verify(
        &self,
        req: &SignedRequest<'_>,
        secrets: &dyn SecretLookup,
        now: SystemTime,
        opts: &VerifyOptions,
    ) -> Result<(), AuthError> {
        verify_payload(&self.0, req, secrets, now, opts, true)
    }

    /// Verifies a request whose body is streamed past the server rather than read first:
    /// `req.body` is ignored, and the signature is checked against the payload hash the
    /// request declares in `x-amz-content-sha256` (required). Whether the bytes that follow
    /// match a declared hash is for whoever reads them to check.
    pub fn verify_streaming(
        &self,
        req: &SignedRequest<'_>,
        secrets: &dyn SecretLookup,
        now: SystemTime,
        opts: &VerifyOptions,
    ) -> Result<(), AuthError> {
        if parse::header_text(req, "x-amz-content-sha256").is_none() && !self.0.presigned {
            return Err(AuthError::Incomplete(
                "A streamed request must declare its payload hash in x-amz-content-sha256".into(),
            ));
        }
        verify_payload(&self.0, req, secrets, now, opts, false)
    }
}

fn verify_payload(
    auth: &parse::Authentication,
    req: &SignedRequest<'_>,
    secrets: &dyn SecretLookup,
    now: SystemTime,
    opts: &VerifyOptions,
    body_present: bool,
) -> Result<(), AuthError> {
    let key = secrets
        .signing_key(&auth.access_key_id, &auth.date, &auth.region, &auth.service)
        .ok_or(AuthError::UnknownAccessKey)?;
    auth.check_time(now, opts.max_skew)?;

    let body_hash = if body_present {
        sha256_hex(req.body)
    } else {
        UNSIGNED_PAYLOAD.to_owned()
    };
    let declared = parse::header_text(req, "x-amz-content-sha256");
    if let Some(declared) = &declared
        && body_present
        && !declared.eq_ignore_ascii_case(&body_hash)
    {
        // The header is what is signed, so without this check a body could be swapped
        // under a valid signature (S3 calls this XAmzContentSHA256Mismatch); and a whole
        // body, read before it is handed on, is always signed by its hash: AWS accepts
        // UNSIGNED-PAYLOAD and the streaming forms only where bodies stream (S3).
        return Err(AuthError::SignatureMismatch);
    }
    // The payload hash that was signed. `x-amz-content-sha256` wins when present (for a
    // streamed body it may be UNSIGNED-PAYLOAD or STREAMING-...; streaming chunk signatures
    // are not checked here). Presigned URLs carry no body hash, and clients disagree on
    // what they sign: botocore and S3 use UNSIGNED-PAYLOAD, AWS's own signing test suite
    // hashes the (empty) body. Both are accepted; neither lets anything unsigned through
    // that the other would not.
    let candidates: Vec<&str> = match (&declared, auth.presigned) {
        (Some(declared), _) => vec![declared],
        (None, true) => vec![UNSIGNED_PAYLOAD, &body_hash],
        (None, false) => vec![&body_hash],
    };

    let scope = auth.scope();
    let given = auth.signature.to_ascii_lowercase();
    let mut matched = false;
    for payload_hash in candidates {
        let creq = canonical_request(
            req,
            &auth.signed_headers,
            payload_hash,
            auth.presigned,
            opts,
        );
        let expected = signature(&key, &string_to_sign(&auth.amz_date, &scope, &creq));
        // Not short-circuited, so timing does not tell which candidate matched either.
        matched |= constant_time_eq(expected.as_bytes(), given.as_bytes());
    }
    if !matched {
        return Err(AuthError::SignatureMismatch);
    }
    Ok(())
}

/// Equality whose running time depends only on the lengths, so a forger cannot learn the
/// expected signature byte by byte. (Signature lengths are public: 64 hex digits.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

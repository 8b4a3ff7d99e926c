//! Signing, the client's side: for presigned URLs the server hands out, and for tests.

use std::time::SystemTime;

use crate::canonical::{
    ALGORITHM, UNSIGNED_PAYLOAD, canonical_request, format_amz_date, sha256_hex, signature,
    signing_key, string_to_sign, uri_encode,
};
use crate::{SignedRequest, VerifyOptions};

/// Who signs, for which scope, and when.
#[derive(Debug, Clone)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

impl SigningParams<'_> {
    /// `(amz_date, scope)` for the signing time.
    fn date_and_scope(&self) -> (String, String) {
        let amz_date = format_amz_date(self.time);
        let date = amz_date.get(..8).unwrap_or_default();
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        (amz_date, scope)
    }

    fn sign(&self, scope: &str, amz_date: &str, canonical_request: &str) -> String {
        let date = amz_date.get(..8).unwrap_or_default();
        let key = signing_key(self.secret_access_key, date, self.region, self.service);
        signature(&key, &string_to_sign(amz_date, scope, canonical_request))
    }
}

/// Signs `req` in the `Authorization` header form, as an SDK would, and returns the two
/// headers to add to it: `("x-amz-date", ..)` and `("authorization", ..)`.
///
/// Every header of `req` is signed, so it must carry `host`; any `x-amz-date` or
/// `authorization` it has is ignored (the caller replaces them). The payload hash is
/// `req`'s `x-amz-content-sha256` header if it has one, else the body's SHA-256, which is
/// what [`verify`](crate::verify) expects.
pub fn sign(
    req: &SignedRequest<'_>,
    params: &SigningParams<'_>,
    opts: &VerifyOptions,
) -> [(&'static str, String); 2] {
    let (amz_date, scope) = params.date_and_scope();
    let mut headers: Vec<(&str, &[u8])> = req
        .headers
        .iter()
        .filter(|(k, _)| {
            !k.eq_ignore_ascii_case("x-amz-date") && !k.eq_ignore_ascii_case("authorization")
        })
        .copied()
        .collect();
    headers.push(("x-amz-date", amz_date.as_bytes()));
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    names.dedup();

    let payload_hash = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-content-sha256"))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
        .unwrap_or_else(|| sha256_hex(req.body));
    let to_sign = SignedRequest {
        headers: &headers,
        ..*req
    };
    let creq = canonical_request(&to_sign, &names, &payload_hash, false, opts);
    let signature = params.sign(&scope, &amz_date, &creq);
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        params.access_key_id,
        names.join(";")
    );
    [("x-amz-date", amz_date), ("authorization", authorization)]
}

/// The query string (without `?`) of a presigned URL for `method` on `host` and `raw_path`
/// (already percent-encoded), valid for `expires` seconds from `params.time` (at most
/// 604800, a week, or verification refuses it). Signs only `host`, with an unsigned
/// payload, as botocore's presigner does, and default (non-S3) path encoding.
pub fn presign_query(
    method: &str,
    host: &str,
    raw_path: &str,
    expires: u64,
    params: &SigningParams<'_>,
) -> String {
    let (amz_date, scope) = params.date_and_scope();
    let credential = format!("{}/{scope}", params.access_key_id);
    let query = format!(
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={amz_date}\
         &X-Amz-Expires={expires}&X-Amz-SignedHeaders=host",
        uri_encode(credential.as_bytes(), false)
    );
    let headers: [(&str, &[u8]); 1] = [("host", host.as_bytes())];
    let req = SignedRequest {
        method,
        raw_path,
        raw_query: &query,
        headers: &headers,
        body: b"",
    };
    let creq = canonical_request(
        &req,
        &["host"],
        UNSIGNED_PAYLOAD,
        true,
        &VerifyOptions::default(),
    );
    let signature = params.sign(&scope, &amz_date, &creq);
    format!("{query}&X-Amz-Signature={signature}")
}

//! The SigV4 algorithm's building blocks: URI encoding, the canonical request, the string
//! to sign, the signing key and the signature.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::{SignedRequest, VerifyOptions};

/// The only algorithm verified: SigV4 with HMAC-SHA256.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// AWS's URI encoding: the RFC 3986 unreserved characters (`A-Za-z0-9-_.~`) are kept, every
/// other byte becomes `%XX` with upper-case hex. `/` is kept when encoding a path
/// (`keep_slash`) and escaped in query keys and values.
pub fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn push_escaped(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// The canonical URI: the path, normalized and encoded as `opts` say.
///
/// With `double_encode_path` (every service but S3) clients sign the URI encoding of the
/// path they sent, which is already encoded: `arn%3Aaws` is signed as `arn%253Aaws`. Without
/// it (S3) the path is signed as sent; only bytes a client left raw on the wire, such as a
/// space, are escaped, since that is how the client encoded them when it signed.
pub fn canonical_uri(raw_path: &str, opts: &VerifyOptions) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    let path = if opts.normalize_path {
        Cow::Owned(normalize_path(path))
    } else {
        Cow::Borrowed(path)
    };
    if opts.double_encode_path {
        return uri_encode(path.as_bytes(), true);
    }
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if is_unreserved(b) || b == b'/' || b == b'%' {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Removes empty, `.` and `..` segments, keeping a trailing slash, as botocore and the SDKs
/// do before signing. Works on the encoded path, so `%2E%2E` is a name, not `..`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    let mut out = String::with_capacity(path.len());
    out.push('/');
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Decoded `(key, value)` pairs of a raw query string, in order. `+` is a literal plus, not
/// a space: SigV4 clients encode spaces as `%20`. Malformed escapes are kept literally.
pub(crate) fn query_pairs(raw_query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// The canonical query string: every parameter decoded, re-encoded with [`uri_encode`] and
/// sorted by key, then value. A presigned request's own `X-Amz-Signature` is left out (it
/// cannot sign itself).
pub fn canonical_query(raw_query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .filter(|(k, _)| !(presigned && k == b"X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A header value in canonical form: trimmed, with runs of spaces collapsed to one.
///
/// Only spaces, not tabs or other whitespace: that is what AWS's servers do (and what the
/// aws-sdk-rust and Go signers mirror). Values that are not UTF-8 are read as Latin-1,
/// which is how a client holding text (botocore: Python's http.client) put them on the wire,
/// and so reproduces the text it signed; UTF-8 values are signed as sent.
fn canonical_header_value(raw: &[u8]) -> String {
    let text = match std::str::from_utf8(raw) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(raw.iter().copied().map(char::from).collect::<String>()),
    };
    let mut out = String::with_capacity(text.len());
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical request, task 1 of SigV4.
///
/// `signed_headers` are the lower-case names the client signed, in its order (the
/// `SignedHeaders` list); repeated headers are joined with `,` in arrival order. `presigned`
/// leaves `X-Amz-Signature` out of the canonical query.
pub fn canonical_request<S: AsRef<str>>(
    req: &SignedRequest<'_>,
    signed_headers: &[S],
    payload_hash: &str,
    presigned: bool,
    opts: &VerifyOptions,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.raw_path, opts));
    out.push('\n');
    out.push_str(&canonical_query(req.raw_query, presigned));
    out.push('\n');
    for name in signed_headers {
        let name = name.as_ref();
        out.push_str(name);
        out.push(':');
        let values = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| canonical_header_value(v));
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&value);
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The string to sign, task 2 of SigV4. `scope` is `date/region/service/aws4_request`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The signing key for a secret and a credential scope, task 3 of SigV4.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The signature: the string to sign's HMAC under the signing key, in lower-case hex.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// Lower-case hex SHA-256, the payload hash of a signed body.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // The key is prepared as RFC 2104 says (hashed when longer than a block, zero-padded)
    // so that construction is infallible: `new_from_slice` returns a Result, even though
    // HMAC accepts any key, and this crate has no panicking paths.
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > block.len() {
        let hashed = Sha256::digest(key);
        block[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `YYYYMMDDTHHMMSSZ`, the SigV4 timestamp format. Times outside years 1970-9999 (which no
/// request can carry) come out as the epoch.
pub fn format_amz_date(t: SystemTime) -> String {
    let dt = t
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_matches_botocore() {
        for (path, normal) in [
            ("/", "/"),
            ("//", "/"),
            ("/a/./b/../c//d/", "/a/c/d/"),
            ("/example/..", "/"),
            ("/a/b/..", "/a"),
            ("/a/..//", "/"),
            ("/../..", "/"),
            ("/a/%2E%2E/b", "/a/%2E%2E/b"),
        ] {
            assert_eq!(normalize_path(path), normal, "{path}");
        }
    }

    #[test]
    fn paths_are_encoded_once_or_twice() {
        let double = VerifyOptions::default();
        let single = VerifyOptions {
            double_encode_path: false,
            normalize_path: false,
            ..VerifyOptions::default()
        };
        assert_eq!(
            canonical_uri("/functions/arn%3Aaws/a b", &double),
            "/functions/arn%253Aaws/a%20b"
        );
        assert_eq!(
            canonical_uri("/bucket/k%3Ay/a b//./", &single),
            "/bucket/k%3Ay/a%20b//./"
        );
        assert_eq!(canonical_uri("", &single), "/");
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        assert_eq!(
            canonical_query("b=2&a=%7e+x&a=1&c&=e&d=%zz", false),
            "=e&a=1&a=~%2Bx&b=2&c=&d=%25zz"
        );
        assert_eq!(
            canonical_query("X-Amz-Signature=ab&X-Amz-Date=1", true),
            "X-Amz-Date=1"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_latin1_is_read_as_text() {
        assert_eq!(canonical_header_value(b"  a   b \t c  "), "a b \t c");
        assert_eq!(canonical_header_value(b"caf\xe9"), "caf\u{e9}");
        assert_eq!(canonical_header_value("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    #[test]
    fn long_hmac_keys_are_hashed_first() {
        // RFC 4231 test case 6: a 131-byte key.
        let key = [0xaa; 131];
        let mac = hmac_sha256(
            &key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // RFC 4231 test case 2: a short key.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn amz_dates_format() {
        assert_eq!(format_amz_date(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(format_amz_date(t), "20150830T123600Z");
    }
}

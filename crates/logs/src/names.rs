//! Name rules for log groups, streams and tags, and how names become file names.
//!
//! File names keep the layout older Stratus wrote and the end-to-end tests read:
//! `/` becomes `%2F` and `%` becomes `%25`. A few more characters are escaped so any
//! legal name is a safe file name (control characters, `~`, a leading `.`), and a name
//! whose escaped form is too long for one path component is cut and suffixed with `~` and
//! a hash, its full text kept beside it (see [`crate::store`]).

use crate::{LogsError, Result};

/// The longest escaped name used whole as a file name; longer ones are hashed. Leaves room
/// under the 255-byte limit for `.jsonl` and a rotated segment's suffix.
pub(crate) const MAX_PLAIN_FILE_NAME: usize = 180;

/// 1 to 512, in AWS's words for each side.
fn check_length(name: &str, len: usize, member: &str) -> Result<()> {
    let constraint = match len {
        0 => "Member must have length greater than or equal to 1",
        n if n > 512 => "Member must have length less than or equal to 512",
        _ => return Ok(()),
    };
    Err(LogsError::invalid(format!(
        "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: {constraint}"
    )))
}

/// Checks a log group name: 1 to 512 characters of `[.\-_/#A-Za-z0-9]`.
pub(crate) fn check_group_name(name: &str, member: &str) -> Result<()> {
    check_length(name, name.len(), member)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
    {
        return Err(LogsError::invalid(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
        )));
    }
    Ok(())
}

/// Checks a log stream name: 1 to 512 characters, none of them `:` or `*`.
pub(crate) fn check_stream_name(name: &str, member: &str) -> Result<()> {
    check_length(name, name.chars().count(), member)?;
    if name.contains([':', '*']) {
        return Err(LogsError::invalid(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"
        )));
    }
    Ok(())
}

/// Checks tags: 1 to 50 of them (when `at_least_one`), keys of 1 to 128 and values of up to
/// 256 letters, digits, white space and `_.:/=+-@`, no key starting with `aws:`.
pub(crate) fn check_tags<'a>(
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    for (k, v) in tags {
        let klen = k.chars().count();
        if klen == 0 || klen > 128 || !k.chars().all(allowed) {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{k}' at 'tags' failed to satisfy constraint: Map keys must have length between 1 and 128 and satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+)$"
            )));
        }
        if k.starts_with("aws:") {
            return Err(LogsError::invalid(format!(
                "Tag key '{k}' uses the reserved prefix aws:"
            )));
        }
        if v.chars().count() > 256 || !v.chars().all(allowed) {
            return Err(LogsError::invalid(format!(
                "1 validation error detected: Value '{v}' at 'tags' failed to satisfy constraint: Map values must have length at most 256 and satisfy regular expression pattern: ^([\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*)$"
            )));
        }
    }
    Ok(())
}

/// The file-name form of a name, and whether it was cut (then its full text must be
/// stored beside it). Never empty, never `.`/`..`, never starts with `.`, no `/`.
pub(crate) fn file_stem(name: &str) -> (String, bool) {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.char_indices() {
        match c {
            '/' => out.push_str("%2F"),
            '%' => out.push_str("%25"),
            '~' => out.push_str("%7E"),
            '.' if i == 0 => out.push_str("%2E"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    if out.len() <= MAX_PLAIN_FILE_NAME {
        return (out, false);
    }
    let mut cut = 120;
    while !out.is_char_boundary(cut) {
        cut -= 1;
    }
    // A '%XX' escape cut in half still decodes to nothing wrong: the stem is not decoded.
    out.truncate(cut);
    out.push_str(&format!("~{:016x}", fnv1a(name.as_bytes())));
    (out, true)
}

/// The name a plain (uncut) file stem stands for; `None` for a cut one (its name is kept
/// beside it) or one that is not a stem at all.
pub(crate) fn from_file_stem(stem: &str) -> Option<String> {
    if stem.contains('~') || stem.is_empty() {
        return None;
    }
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = stem.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// FNV-1a, 64 bits: stable across builds and releases, unlike std's hasher.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        let long = "a".repeat(512);
        let too_long = "a".repeat(513);
        for (name, ok) in [
            ("/aws/lambda/f", true),
            ("a.b-c_d/e#f", true),
            ("..", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("has space", false),
            ("colon:", false),
            ("star*", false),
            ("é", false),
        ] {
            assert_eq!(check_group_name(name, "logGroupName").is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn stream_names() {
        let long = "é".repeat(512);
        for (name, ok) in [
            ("2024/01/01/[$LATEST]abc", true),
            ("any thing é \t", true),
            (long.as_str(), true),
            ("", false),
            ("a:b", false),
            ("a*", false),
        ] {
            assert_eq!(
                check_stream_name(name, "logStreamName").is_ok(),
                ok,
                "{name}"
            );
        }
    }

    #[test]
    fn tags() {
        let mut t = crate::Tags::new();
        t.insert("team".into(), "a b:c/d=e+f-g@h_i.j".into());
        assert!(check_tags(&t).is_ok());
        for (k, v) in [("", "x"), ("aws:x", "y"), ("k", "bad!"), ("k!", "v")] {
            let mut t = crate::Tags::new();
            t.insert(k.into(), v.into());
            assert!(check_tags(&t).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn file_stems_round_trip_and_stay_safe() {
        for (name, stem) in [
            ("/aws/lambda/f", "%2Faws%2Flambda%2Ff"),
            ("2024/01/01/[$LATEST]abc", "2024%2F01%2F01%2F[$LATEST]abc"),
            ("100%", "100%25"),
            ("..", "%2E."),
            (".hidden", "%2Ehidden"),
            ("a~b", "a%7Eb"),
            ("nl\nx", "nl%0Ax"),
        ] {
            let (got, cut) = file_stem(name);
            assert_eq!((got.as_str(), cut), (stem, false), "{name}");
            assert_eq!(from_file_stem(&got).as_deref(), Some(name));
        }
        let long = "/".repeat(300);
        let (stem, cut) = file_stem(&long);
        assert!(cut && stem.len() < MAX_PLAIN_FILE_NAME && stem.contains('~'));
        assert_eq!(from_file_stem(&stem), None);
        assert_ne!(
            file_stem(&"/".repeat(301)).0,
            stem,
            "different names, different stems"
        );
    }
}

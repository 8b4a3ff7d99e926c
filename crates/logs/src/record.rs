//! One event on disk: a JSON line
//! `{"timestamp":<ms>,"ingestionTime":<ms>,"message":"<escaped>"}`.
//!
//! The message comes last and the numbers first, so a reader finds the timestamp without
//! parsing the message, and the message is the bytes between the third key and the closing
//! `"}` — borrowed as is when it holds no escape. Lines written by older Stratus
//! (`{"timestamp":<ms>,"message":"..."}`) read with the timestamp as ingestion time; any
//! other well-formed JSON object with those members reads through serde_json.

/// The fixed overhead AWS counts per event in a batch.
pub(crate) const EVENT_OVERHEAD: usize = 26;

/// Appends one line for the event to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, timestamp: i64, ingestion: i64, message: &str) {
    out.extend_from_slice(b"{\"timestamp\":");
    push_int(out, timestamp);
    out.extend_from_slice(b",\"ingestionTime\":");
    push_int(out, ingestion);
    out.extend_from_slice(b",\"message\":\"");
    escape_into(out, message.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

/// The fields of a line, the message still escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord<'a> {
    pub timestamp: i64,
    pub ingestion: i64,
    /// The JSON string's content, escapes and all.
    pub message: &'a [u8],
}

/// Reads the timestamp and the message's bytes of a line (without its newline). `None`
/// for a line in another shape; [`decode_slow`] reads those.
pub(crate) fn parse(line: &[u8]) -> Option<RawRecord<'_>> {
    let rest = line.strip_prefix(b"{\"timestamp\":")?;
    let (timestamp, rest) = take_int(rest)?;
    let (ingestion, rest) = match rest.strip_prefix(b",\"ingestionTime\":") {
        Some(r) => take_int(r)?,
        None => (timestamp, rest),
    };
    let rest = rest.strip_prefix(b",\"message\":\"")?;
    let message = rest.strip_suffix(b"\"}")?;
    // The message must not end in an odd run of backslashes (then its quote was escaped
    // and the line is not ours).
    let trailing = message.iter().rev().take_while(|&&b| b == b'\\').count();
    if trailing % 2 == 1 {
        return None;
    }
    Some(RawRecord {
        timestamp,
        ingestion,
        message,
    })
}

/// Only the timestamp of a line in our shape: the cheapest test of a time range.
pub(crate) fn timestamp_of(line: &[u8]) -> Option<i64> {
    take_int(line.strip_prefix(b"{\"timestamp\":")?).map(|(n, _)| n)
}

fn take_int(s: &[u8]) -> Option<(i64, &[u8])> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in &digits[..len] {
        n = n * 10 + i64::from(d - b'0');
    }
    Some((if neg { -n } else { n }, &digits[len..]))
}

/// The message of a raw record: borrowed when it holds no escape, else decoded into
/// `scratch` (reused across events, so no allocation per event).
pub(crate) fn message<'a>(raw: &'a [u8], scratch: &'a mut String) -> Option<&'a str> {
    if memchr::memchr(b'\\', raw).is_none() {
        return std::str::from_utf8(raw).ok();
    }
    scratch.clear();
    unescape(raw, scratch)?;
    Some(scratch.as_str())
}

/// An owned message.
pub(crate) fn message_owned(raw: &[u8]) -> Option<String> {
    let mut s = String::new();
    message(raw, &mut s).map(|m| m.to_owned())
}

fn unescape(raw: &[u8], out: &mut String) -> Option<()> {
    let mut i = 0;
    while i < raw.len() {
        let Some(off) = memchr::memchr(b'\\', &raw[i..]) else {
            out.push_str(std::str::from_utf8(&raw[i..]).ok()?);
            break;
        };
        out.push_str(std::str::from_utf8(&raw[i..i + off]).ok()?);
        i += off + 1;
        let c = *raw.get(i)?;
        i += 1;
        match c {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    let lo = raw
                        .get(i..i + 2)
                        .filter(|p| *p == b"\\u")
                        .and_then(|_| hex4(raw.get(i + 2..i + 6)?))
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        }
                        None => 0xFFFD,
                    }
                } else {
                    hi
                };
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            _ => return None,
        }
    }
    Some(())
}

fn hex4(b: &[u8]) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// Reads a line in any JSON shape with `timestamp` and `message` members.
pub(crate) fn decode_slow(line: &[u8]) -> Option<(i64, i64, String)> {
    #[derive(serde::Deserialize)]
    struct Line {
        timestamp: i64,
        #[serde(rename = "ingestionTime")]
        ingestion_time: Option<i64>,
        message: String,
    }
    let l: Line = serde_json::from_slice(line).ok()?;
    Some((
        l.timestamp,
        l.ingestion_time.unwrap_or(l.timestamp),
        l.message,
    ))
}

/// Timestamp, ingestion time and message of any line we can read.
#[cfg(test)]
pub(crate) fn decode(line: &[u8]) -> Option<(i64, i64, String)> {
    match parse(line) {
        Some(r) => Some((r.timestamp, r.ingestion, message_owned(r.message)?)),
        None => decode_slow(line),
    }
}

/// A message's size as AWS counts it in a batch.
pub(crate) fn event_size(message: &str) -> usize {
    message.len() + EVENT_OVERHEAD
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_fast_and_serde_paths() {
        for msg in [
            "plain",
            "quote \" and \\ backslash",
            "tab\tnewline\nreturn\r",
            "ctl \u{1} \u{1f} del \u{7f}",
            "unicode é 日本 🎉",
            "ends in backslash \\",
            "{\"json\": [1, 2]}",
        ] {
            let mut line = Vec::new();
            encode(&mut line, 1_700_000_000_123, 1_700_000_000_456, msg);
            assert_eq!(line.last(), Some(&b'\n'));
            let line = &line[..line.len() - 1];
            // serde_json agrees it is JSON with these values.
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["message"], msg);
            assert_eq!(v["timestamp"], 1_700_000_000_123i64);
            let r = parse(line).unwrap();
            assert_eq!(
                (r.timestamp, r.ingestion),
                (1_700_000_000_123, 1_700_000_000_456)
            );
            assert_eq!(message_owned(r.message).unwrap(), msg);
            assert_eq!(timestamp_of(line), Some(1_700_000_000_123));
        }
    }

    #[test]
    fn reads_older_and_foreign_lines() {
        type Case<'a> = (&'a [u8], Option<(i64, i64, &'a str)>);
        let cases: [Case; 6] = [
            // What stratus-invoke wrote before this crate.
            (
                br#"{"timestamp":5,"message":"START RequestId: 1"}"#,
                Some((5, 5, "START RequestId: 1")),
            ),
            // Spaces, other member order: the slow path.
            (br#"{"message": "x", "timestamp": 7}"#, Some((7, 7, "x"))),
            (
                br#"{"timestamp":1,"message":"\u00e9\ud83c\udf89"}"#,
                Some((1, 1, "é🎉")),
            ),
            (br#"{"timestamp":1,"message":"a\"}"#, None),
            (b"not json", None),
            (b"", None),
        ];
        for (line, want) in cases {
            let got = decode(line);
            assert_eq!(
                got.as_ref().map(|(t, i, m)| (*t, *i, m.as_str())),
                want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn negative_and_large_numbers() {
        let mut line = Vec::new();
        encode(&mut line, -5, i64::from(i32::MAX) * 1000, "m");
        let r = parse(&line[..line.len() - 1]).unwrap();
        assert_eq!((r.timestamp, r.ingestion), (-5, i64::from(i32::MAX) * 1000));
    }
}

//! A statement's `Condition` block, compiled on write: each operator split into its set
//! qualifier (`ForAnyValue:`/`ForAllValues:`), its base test, its negation and its
//! `IfExists` suffix; each value parsed once into what the test compares (a pattern, a
//! number, an instant, a CIDR block).
//!
//! Invariants: keys are lowercased (the context's keys are too); a value that cannot be
//! read as its operator's type (a number that is not one, an address that is not one) is
//! kept as `None` and matches nothing, as AWS treats it, except dates, which IAM refuses on
//! write ("The policy failed legacy parsing").

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::pattern::{Pattern, Syntax};
use super::{PolicyError, legacy, syntax};

/// One operator with its keys, e.g. `ForAnyValue:StringLike: {"aws:TagKeys": ["a*"]}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub set: SetOp,
    pub test: Test,
    /// `StringNotEquals`, `NotIpAddress`, `ArnNotLike`...: true when no value matches.
    pub negated: bool,
    /// `...IfExists`: an absent key satisfies the condition.
    pub if_exists: bool,
    pub keys: Vec<KeyValues>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOp {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
        }
    }
}

/// The base test, without negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Test {
    /// `StringEquals`/`StringEqualsIgnoreCase`/`StringLike`: the difference is in how the
    /// values' patterns were compiled.
    String,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyValues {
    /// Lowercased.
    pub key: Box<str>,
    pub values: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Patterns(Vec<Pattern>),
    /// An ARN's six colon-separated parts, each a pattern (AWS matches them separately).
    Arns(Vec<Vec<Pattern>>),
    Numbers(Vec<Option<f64>>),
    /// Milliseconds since the epoch.
    Instants(Vec<i64>),
    Bools(Vec<Option<bool>>),
    Texts(Vec<Box<str>>),
    Cidrs(Vec<Option<Cidr>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().ok()?,
                Some(p.trim().parse::<u8>().ok()?),
            ),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Compiles a statement's `Condition` object.
pub(crate) fn compile(
    block: &Map<String, Value>,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let mut out = Vec::with_capacity(block.len());
    for (operator, keys) in block {
        let keys = keys.as_object().ok_or_else(syntax)?;
        let Some((set, test, negated, if_exists, flavour)) = operator_parts(operator) else {
            // An operator IAM does not know passes only with nothing under it.
            if keys.is_empty() {
                continue;
            }
            return Err(syntax());
        };
        let mut compiled = Vec::with_capacity(keys.len());
        for (key, value) in keys {
            let raw = values_of(value)?;
            let values = compile_values(test, flavour, &raw, variables)?;
            compiled.push(KeyValues {
                key: key.to_ascii_lowercase().into(),
                values,
            });
        }
        out.push(Condition {
            set,
            test,
            negated,
            if_exists,
            keys: compiled,
        });
    }
    Ok(out)
}

/// How a string operator's values are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Plain,
    IgnoreCase,
    Like,
}

type Parts = (SetOp, Test, bool, bool, Flavour);

fn operator_parts(operator: &str) -> Option<Parts> {
    let (set, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
        (SetOp::ForAnyValue, rest)
    } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
        (SetOp::ForAllValues, rest)
    } else {
        (SetOp::Single, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    use Flavour::*;
    let (test, negated, flavour) = match base {
        "StringEquals" => (Test::String, false, Plain),
        "StringNotEquals" => (Test::String, true, Plain),
        "StringEqualsIgnoreCase" => (Test::String, false, IgnoreCase),
        "StringNotEqualsIgnoreCase" => (Test::String, true, IgnoreCase),
        "StringLike" => (Test::String, false, Like),
        "StringNotLike" => (Test::String, true, Like),
        "NumericEquals" => (Test::Numeric(Cmp::Eq), false, Plain),
        "NumericNotEquals" => (Test::Numeric(Cmp::Eq), true, Plain),
        "NumericLessThan" => (Test::Numeric(Cmp::Lt), false, Plain),
        "NumericLessThanEquals" => (Test::Numeric(Cmp::Le), false, Plain),
        "NumericGreaterThan" => (Test::Numeric(Cmp::Gt), false, Plain),
        "NumericGreaterThanEquals" => (Test::Numeric(Cmp::Ge), false, Plain),
        "DateEquals" => (Test::Date(Cmp::Eq), false, Plain),
        "DateNotEquals" => (Test::Date(Cmp::Eq), true, Plain),
        "DateLessThan" => (Test::Date(Cmp::Lt), false, Plain),
        "DateLessThanEquals" => (Test::Date(Cmp::Le), false, Plain),
        "DateGreaterThan" => (Test::Date(Cmp::Gt), false, Plain),
        "DateGreaterThanEquals" => (Test::Date(Cmp::Ge), false, Plain),
        "Bool" => (Test::Bool, false, Plain),
        "BinaryEquals" => (Test::Binary, false, Plain),
        "IpAddress" => (Test::Ip, false, Plain),
        "NotIpAddress" => (Test::Ip, true, Plain),
        // AWS documents ArnEquals and ArnLike alike: wildcards in each of the six parts.
        "ArnEquals" | "ArnLike" => (Test::Arn, false, Like),
        "ArnNotEquals" | "ArnNotLike" => (Test::Arn, true, Like),
        // `NullIfExists` is not an operator.
        "Null" if !if_exists => (Test::Null, false, Plain),
        _ => return None,
    };
    Some((set, test, negated, if_exists, flavour))
}

/// A condition value: a string, number or bool, or an array of them; kept as text.
fn values_of(value: &Value) -> Result<Vec<String>, PolicyError> {
    fn scalar(v: &Value) -> Result<String, PolicyError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(syntax()),
        }
    }
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        v => Ok(vec![scalar(v)?]),
    }
}

fn compile_values(
    test: Test,
    flavour: Flavour,
    raw: &[String],
    variables: bool,
) -> Result<Values, PolicyError> {
    Ok(match test {
        Test::String => {
            let syntax = Syntax {
                wildcards: flavour == Flavour::Like,
                variables,
                ignore_case: flavour == Flavour::IgnoreCase,
            };
            Values::Patterns(raw.iter().map(|v| Pattern::compile(v, syntax)).collect())
        }
        Test::Arn => {
            let syntax = Syntax {
                wildcards: true,
                variables,
                ignore_case: false,
            };
            Values::Arns(
                raw.iter()
                    .map(|v| {
                        v.splitn(6, ':')
                            .map(|part| Pattern::compile(part, syntax))
                            .collect()
                    })
                    .collect(),
            )
        }
        Test::Numeric(_) => {
            Values::Numbers(raw.iter().map(|v| v.trim().parse::<f64>().ok()).collect())
        }
        Test::Date(_) => Values::Instants(
            raw.iter()
                .map(|v| parse_instant(v).ok_or_else(legacy))
                .collect::<Result<_, _>>()?,
        ),
        Test::Bool | Test::Null => Values::Bools(raw.iter().map(|v| parse_bool(v)).collect()),
        Test::Binary => Values::Texts(raw.iter().map(|v| v.as_str().into()).collect()),
        Test::Ip => Values::Cidrs(raw.iter().map(|v| Cidr::parse(v)).collect()),
    })
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An instant as IAM reads one: epoch seconds (`1767225600`) or ISO 8601
/// (`2026-12-06`, `2026-12-06T10:00:00Z`, `...T10:00:00.123+02:00`); in milliseconds.
pub(crate) fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok()?.checked_mul(1000);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    let mut i = 4;
    let (mut month, mut day) = (1, 1);
    if b.get(i) == Some(&b'-') {
        month = num(i + 1, 2)?;
        i += 3;
        if b.get(i) == Some(&b'-') {
            day = num(i + 1, 2)?;
            i += 3;
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0);
    if matches!(b.get(i), Some(b'T' | b't')) {
        hour = num(i + 1, 2)?;
        i += 3;
        if b.get(i) == Some(&b':') {
            minute = num(i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b':') {
                second = num(i + 1, 2)?;
                i += 3;
                if matches!(b.get(i), Some(b'.' | b',')) {
                    i += 1;
                    let start = i;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    let frac = &s[start..i];
                    if frac.is_empty() {
                        return None;
                    }
                    let ms: String = frac.chars().chain("00".chars()).take(3).collect();
                    millis = ms.parse().ok()?;
                }
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
    }
    let offset_minutes = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                2 => (num(i + 1, 2)?, 0),
                4 => (num(i + 1, 2)?, num(i + 3, 2)?),
                5 if rest.get(2) == Some(&b':') => (num(i + 1, 2)?, num(i + 4, 2)?),
                _ => return None,
            };
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1767225600", Some(1_767_225_600_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2026-01-01T00:00:00Z", Some(1_767_225_600_000)),
            ("2026-01-01", Some(1_767_225_600_000)),
            ("2026-01-01T02:00:00+02:00", Some(1_767_225_600_000)),
            ("2026-01-01T02:00:00+0200", Some(1_767_225_600_000)),
            ("2025-12-31T19:00:00-05:00", Some(1_767_225_600_000)),
            ("2026-01-01T00:00:00.250Z", Some(1_767_225_600_250)),
            ("2024-02-29T12:00:00Z", Some(1_709_208_000_000)),
            ("2026-13-01T00:00:00Z", None),
            ("2026-01-01T25:00:00Z", None),
            ("yesterday", None),
            ("2026-01-01T00:00:00Zjunk", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_instant(text), *want, "{text:?}");
        }
    }

    #[test]
    fn cidrs() {
        let cases: &[(&str, &str, bool)] = &[
            ("203.0.113.0/24", "203.0.113.7", true),
            ("203.0.113.0/24", "203.0.114.7", false),
            ("203.0.113.7", "203.0.113.7", true),
            ("203.0.113.7/32", "203.0.113.8", false),
            ("0.0.0.0/0", "198.51.100.1", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("2001:db8::/32", "10.0.0.1", false),
        ];
        for (cidr, ip, want) in cases {
            let c = Cidr::parse(cidr).expect(cidr);
            let ip: IpAddr = ip.parse().expect(ip);
            assert_eq!(c.contains(ip), *want, "{cidr} contains {ip}");
        }
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("not-an-ip"), None);
    }
}

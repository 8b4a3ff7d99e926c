//! Condition operators against a request's context.
//!
//! AWS's rules, from its condition-operator reference: all operators of a block must hold;
//! within one operator every key must; within one key any listed value may match. A key
//! absent from the context fails a positive test and passes a negated one
//! (`StringNotEquals`, `ArnNotLike`, `NotIpAddress`...); `...IfExists` passes; `Null`
//! tests presence itself. `ForAnyValue:` needs some context value to pass the test (so an
//! absent key fails), `ForAllValues:` needs every one to (so an absent key passes).

use std::net::IpAddr;

use crate::eval::Context;
use crate::policy::{Condition, KeyValues, SetOp, Test, Values, parse_bool, parse_instant};

pub(super) fn holds(c: &Condition, ctx: &Context) -> bool {
    c.keys.iter().all(|kv| key_holds(c, kv, ctx))
}

fn key_holds(c: &Condition, kv: &KeyValues, ctx: &Context) -> bool {
    let present = ctx.get_lower(&kv.key);
    if c.test == Test::Null {
        // `"Null": {"k": "true"}` holds when k is absent; `"false"` when it is present.
        let Values::Bools(wanted) = &kv.values else {
            return false;
        };
        return wanted.iter().any(|w| *w == Some(present.is_none()));
    }
    let Some(values) = present else {
        return c.if_exists
            || match c.set {
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => false,
                SetOp::Single => c.negated,
            };
    };
    let test = |v: &str| any_value_matches(c.test, &kv.values, v, ctx) != c.negated;
    match c.set {
        SetOp::ForAnyValue => values.iter().any(|v| test(v)),
        SetOp::ForAllValues => values.iter().all(|v| test(v)),
        // A single-valued key; should it carry several values, a positive test needs one
        // to match and a negated one needs none to.
        SetOp::Single => {
            values
                .iter()
                .any(|v| any_value_matches(c.test, &kv.values, v, ctx))
                != c.negated
        }
    }
}

/// Whether the context value `v` matches any of the policy's values (the positive test).
fn any_value_matches(test: Test, values: &Values, v: &str, ctx: &Context) -> bool {
    match (test, values) {
        (Test::String, Values::Patterns(ps)) => ps.iter().any(|p| p.matches(v, ctx)),
        (Test::Arn, Values::Arns(arns)) => arns.iter().any(|parts| arn_matches(parts, v, ctx)),
        (Test::Numeric(cmp), Values::Numbers(ns)) => match v.trim().parse::<f64>() {
            Ok(x) => ns.iter().flatten().any(|n| cmp.holds(x, *n)),
            Err(_) => false,
        },
        (Test::Date(cmp), Values::Instants(ts)) => match parse_instant(v) {
            Some(x) => ts.iter().any(|t| cmp.holds(x, *t)),
            None => false,
        },
        (Test::Bool, Values::Bools(bs)) => match parse_bool(v) {
            Some(x) => bs.contains(&Some(x)),
            None => false,
        },
        (Test::Binary, Values::Texts(ts)) => ts.iter().any(|t| **t == *v),
        (Test::Ip, Values::Cidrs(cs)) => match v.trim().parse::<IpAddr>() {
            Ok(ip) => cs.iter().flatten().any(|c| c.contains(ip)),
            Err(_) => false,
        },
        _ => false,
    }
}

/// ARNs are matched part by part (six colon-separated parts; the last keeps its colons).
fn arn_matches(parts: &[crate::policy::Pattern], v: &str, ctx: &Context) -> bool {
    let mut text = v.splitn(6, ':');
    let mut count = 0;
    for p in parts {
        match text.next() {
            Some(t) if p.matches(t, ctx) => count += 1,
            _ => return false,
        }
    }
    count == 6 && text.next().is_none()
}

//! The filter pattern language of metric filters, subscription filters and
//! FilterLogEvents: parsed once into a [`FilterPattern`], then matched against messages.
//!
//! Three kinds, chosen by the first character:
//!
//! * **Terms** (unstructured text): `ERROR`, `ERROR ARGUMENTS` (all must appear),
//!   `"INTERNAL SERVER ERROR"` (an exact phrase), `?ERROR ?WARN` (any of them),
//!   `ERROR -ARGUMENTS` (not that one). Case-sensitive. A term matches where it starts a
//!   word: `error` matches `errors` and `[error]` but not `suberror`, the way AWS does
//!   (`%AUTHORIZED%`, a regular expression, is AWS's documented way to match inside a word).
//!   An empty pattern, or `""`, matches every event.
//! * **JSON** (`{ ... }`): conditions on a selector (`$.a.b`, `$.a[0].c`):
//!   `= != < <= > >=` against strings (quoted or bare, `*` as wildcard) and numbers,
//!   `IS TRUE`, `IS FALSE`, `IS NULL`, `NOT EXISTS`, combined with `&&`, `||` and
//!   parentheses. Only messages that are JSON match.
//! * **Space-delimited** (`[ ... ]`): one entry per field of the message, which is split on
//!   spaces with `"..."` and `[...]` each one field (without the quotes or brackets); `...`
//!   stands for any number of fields; an entry may carry conditions like JSON's
//!   (`status_code = 4*`, `bytes > 1000`, `status_code = 404 || status_code = 410`).
//!
//! Regular expressions (`%...%`) are not supported and are refused.

use std::str::FromStr;

use crate::{LogsError, Result};

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    All,
    Terms(Terms),
    Json(Expr<Selector>),
    Delimited(Delimited),
}

impl FromStr for FilterPattern {
    type Err = LogsError;

    fn from_str(s: &str) -> Result<FilterPattern> {
        FilterPattern::parse(s)
    }
}

fn invalid(detail: impl std::fmt::Display) -> LogsError {
    LogsError::invalid(format!("Invalid filter pattern: {detail}"))
}

impl FilterPattern {
    /// Parses a pattern; an error is an InvalidParameterException saying what is wrong.
    pub fn parse(pattern: &str) -> Result<FilterPattern> {
        if pattern.chars().count() > 1024 {
            return Err(LogsError::invalid(
                "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to 1024",
            ));
        }
        let p = pattern.trim();
        let kind = if p.is_empty() {
            Kind::All
        } else if let Some(body) = p.strip_prefix('{') {
            let body = body
                .strip_suffix('}')
                .ok_or_else(|| invalid("a JSON pattern must end with '}'"))?;
            let mut parser = Parser::new(body);
            let expr = parser.expr(&mut |p| p.selector())?;
            parser.end()?;
            Kind::Json(expr)
        } else if let Some(body) = p.strip_prefix('[') {
            let body = body
                .strip_suffix(']')
                .ok_or_else(|| invalid("a space-delimited pattern must end with ']'"))?;
            Kind::Delimited(Delimited::parse(body)?)
        } else if p.starts_with('%') {
            return Err(invalid("regular expressions (%...%) are not supported"));
        } else {
            let terms = Terms::parse(p)?;
            if terms.is_empty() {
                Kind::All
            } else {
                Kind::Terms(terms)
            }
        };
        Ok(FilterPattern { kind })
    }

    /// Whether the pattern matches every event.
    pub fn matches_all(&self) -> bool {
        self.kind == Kind::All
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Terms(t) => t.matches(message),
            Kind::Json(e) => {
                let start = message.trim_start();
                if !(start.starts_with('{') || start.starts_with('[')) {
                    return false;
                }
                match serde_json::from_str::<serde_json::Value>(message) {
                    Ok(v) => e.eval(&mut |sel, cond| cond.test_json(sel.resolve(&v))),
                    Err(_) => false,
                }
            }
            Kind::Delimited(d) => d.matches(message),
        }
    }

    /// Text every matching message contains as is, and whose JSON-escaped form is itself
    /// (so a reader may look for it in stored lines before decoding them).
    pub(crate) fn required_literal(&self) -> Option<&str> {
        let Kind::Terms(t) = &self.kind else {
            return None;
        };
        t.required
            .iter()
            .filter(|s| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20))
            .max_by_key(|s| s.len())
            .map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------
// Terms

#[derive(Debug, Clone, Default, PartialEq)]
struct Terms {
    required: Vec<String>,
    any: Vec<String>,
    excluded: Vec<String>,
}

impl Terms {
    fn parse(p: &str) -> Result<Terms> {
        let mut t = Terms::default();
        let mut chars = p.char_indices().peekable();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let list = match c {
                '?' => {
                    chars.next();
                    &mut t.any
                }
                '-' if p[i + 1..].starts_with(|c: char| !c.is_whitespace()) => {
                    chars.next();
                    &mut t.excluded
                }
                _ => &mut t.required,
            };
            let term = match chars.peek() {
                Some(&(_, '"')) => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, c)) => s.push(c),
                                None => return Err(invalid("unterminated quoted term")),
                            },
                            Some((_, '"')) => break,
                            Some((_, c)) => s.push(c),
                            None => return Err(invalid("unterminated quoted term")),
                        }
                    }
                    s
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&(_, c)) = chars.peek() {
                        if c.is_whitespace() {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    s
                }
            };
            if !term.is_empty() {
                list.push(term);
            }
        }
        Ok(t)
    }

    fn is_empty(&self) -> bool {
        self.required.is_empty() && self.any.is_empty() && self.excluded.is_empty()
    }

    fn matches(&self, m: &str) -> bool {
        self.required.iter().all(|t| contains_term(m, t))
            && (self.any.is_empty() || self.any.iter().any(|t| contains_term(m, t)))
            && !self.excluded.iter().any(|t| contains_term(m, t))
    }
}

/// Whether `term` occurs in `m` starting a word: at the start, after a character that is
/// not a letter or digit, or anywhere if the term itself starts with such a character.
fn contains_term(m: &str, term: &str) -> bool {
    let needs_boundary = term.chars().next().is_some_and(char::is_alphanumeric);
    let mut from = 0;
    while let Some(i) = m[from..].find(term) {
        let at = from + i;
        if !needs_boundary
            || !m[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
        {
            return true;
        }
        from = at + m[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

// ---------------------------------------------------------------------------------------
// Conditions shared by JSON and space-delimited patterns

/// `&&`/`||` over conditions on a field `F` (a JSON selector, or a delimited field's name).
#[derive(Debug, Clone, PartialEq)]
enum Expr<F> {
    Cond(F, Cond),
    And(Box<Expr<F>>, Box<Expr<F>>),
    Or(Box<Expr<F>>, Box<Expr<F>>),
}

impl<F> Expr<F> {
    fn eval(&self, test: &mut impl FnMut(&F, &Cond) -> bool) -> bool {
        match self {
            Expr::Cond(f, c) => test(f, c),
            Expr::And(a, b) => a.eval(test) && b.eval(test),
            Expr::Or(a, b) => a.eval(test) || b.eval(test),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A string, `*` a wildcard.
    Str(String),
    /// A number, with the text it was written as (for comparing with text fields).
    Num(f64, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Cmp(Op, Value),
    IsTrue,
    IsFalse,
    IsNull,
    NotExists,
}

impl Cond {
    fn test_json(&self, v: Option<&serde_json::Value>) -> bool {
        use serde_json::Value as J;
        match (self, v) {
            (Cond::NotExists, v) => v.is_none(),
            (_, None) => false,
            (Cond::IsTrue, Some(v)) => v == &J::Bool(true),
            (Cond::IsFalse, Some(v)) => v == &J::Bool(false),
            (Cond::IsNull, Some(v)) => v.is_null(),
            (Cond::Cmp(op, val), Some(v)) => match v {
                J::Number(n) => n
                    .as_f64()
                    .is_some_and(|n| compare(*op, val, Field::Num(n, &v.to_string()))),
                J::String(s) => compare(*op, val, Field::Text(s)),
                J::Bool(b) => compare(*op, val, Field::Text(if *b { "true" } else { "false" })),
                _ => false,
            },
        }
    }

    fn test_text(&self, field: Option<&str>) -> bool {
        match (self, field) {
            (Cond::NotExists, f) => f.is_none(),
            (_, None) => false,
            (Cond::IsTrue, Some(f)) => f == "true",
            (Cond::IsFalse, Some(f)) => f == "false",
            (Cond::IsNull, Some(f)) => f == "null",
            (Cond::Cmp(op, val), Some(f)) => match f.parse::<f64>() {
                Ok(n) if n.is_finite() => compare(*op, val, Field::Num(n, f)),
                _ => compare(*op, val, Field::Text(f)),
            },
        }
    }
}

/// A field's value: a number (and its text) or only text.
enum Field<'a> {
    Num(f64, &'a str),
    Text(&'a str),
}

fn compare(op: Op, val: &Value, field: Field<'_>) -> bool {
    match (val, field) {
        (Value::Num(want, _), Field::Num(got, _)) => match op {
            Op::Eq => got == *want,
            Op::Ne => got != *want,
            Op::Lt => got < *want,
            Op::Le => got <= *want,
            Op::Gt => got > *want,
            Op::Ge => got >= *want,
        },
        (Value::Num(_, text), Field::Text(got)) => match op {
            Op::Eq => got == text,
            Op::Ne => got != text,
            _ => false,
        },
        (Value::Str(pat), Field::Num(_, got) | Field::Text(got)) => match op {
            Op::Eq => glob(pat, got),
            Op::Ne => !glob(pat, got),
            _ => false,
        },
    }
}

/// `*`-wildcard match of the whole of `s`.
fn glob(pat: &str, s: &str) -> bool {
    if !pat.contains('*') {
        return pat == s;
    }
    let (p, s) = (pat.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

// ---------------------------------------------------------------------------------------
// JSON selectors

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct Selector(Vec<Step>);

impl Selector {
    fn resolve<'v>(&self, mut v: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        for step in &self.0 {
            v = match step {
                Step::Key(k) => v.as_object()?.get(k)?,
                Step::Index(i) => v.as_array()?.get(*i)?,
            };
        }
        Some(v)
    }
}

// ---------------------------------------------------------------------------------------
// The expression parser (JSON bodies and delimited field conditions)

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Parser<'a> {
        Parser { s, i: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.i += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.rest().starts_with(tok) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    /// Eats a keyword (`IS`, `TRUE`, ...) only when a whole word.
    fn eat_word(&mut self, w: &str) -> bool {
        self.ws();
        let r = self.rest();
        if r.len() >= w.len()
            && r[..w.len()].eq_ignore_ascii_case(w)
            && !r[w.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            self.i += w.len();
            true
        } else {
            false
        }
    }

    fn end(&mut self) -> Result<()> {
        self.ws();
        if self.rest().is_empty() {
            Ok(())
        } else {
            Err(invalid(format!("unexpected '{}'", self.rest())))
        }
    }

    fn expr<F>(&mut self, field: &mut impl FnMut(&mut Parser<'a>) -> Result<F>) -> Result<Expr<F>> {
        let mut left = self.and(field)?;
        while self.eat("||") {
            let right = self.and(field)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and<F>(&mut self, field: &mut impl FnMut(&mut Parser<'a>) -> Result<F>) -> Result<Expr<F>> {
        let mut left = self.unary(field)?;
        while self.eat("&&") {
            let right = self.unary(field)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary<F>(
        &mut self,
        field: &mut impl FnMut(&mut Parser<'a>) -> Result<F>,
    ) -> Result<Expr<F>> {
        if self.eat("(") {
            let e = self.expr(field)?;
            if !self.eat(")") {
                return Err(invalid("missing ')'"));
            }
            return Ok(e);
        }
        self.ws();
        let f = field(self)?;
        let cond = self.cond()?;
        Ok(Expr::Cond(f, cond))
    }

    fn cond(&mut self) -> Result<Cond> {
        if self.eat_word("IS") {
            return if self.eat_word("TRUE") {
                Ok(Cond::IsTrue)
            } else if self.eat_word("FALSE") {
                Ok(Cond::IsFalse)
            } else if self.eat_word("NULL") {
                Ok(Cond::IsNull)
            } else {
                Err(invalid("expected TRUE, FALSE or NULL after IS"))
            };
        }
        if self.eat_word("NOT") {
            return if self.eat_word("EXISTS") {
                Ok(Cond::NotExists)
            } else {
                Err(invalid("expected EXISTS after NOT"))
            };
        }
        let op = if self.eat("!=") {
            Op::Ne
        } else if self.eat("<=") {
            Op::Le
        } else if self.eat(">=") {
            Op::Ge
        } else if self.eat("=") {
            Op::Eq
        } else if self.eat("<") {
            Op::Lt
        } else if self.eat(">") {
            Op::Gt
        } else {
            return Err(invalid(format!(
                "expected a comparison at '{}'",
                self.rest()
            )));
        };
        let value = self.value()?;
        if matches!(value, Value::Str(_)) && !matches!(op, Op::Eq | Op::Ne) {
            return Err(invalid("only = and != compare strings"));
        }
        Ok(Cond::Cmp(op, value))
    }

    fn value(&mut self) -> Result<Value> {
        self.ws();
        let r = self.rest();
        if let Some(q) = r.strip_prefix('"') {
            let mut s = String::new();
            let mut chars = q.char_indices();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => s.push(c),
                        None => return Err(invalid("unterminated string")),
                    },
                    Some((j, '"')) => {
                        self.i += 1 + j + 1;
                        return Ok(Value::Str(s));
                    }
                    Some((_, c)) => s.push(c),
                    None => return Err(invalid("unterminated string")),
                }
            }
        }
        let len = r
            .find(|c: char| {
                c.is_whitespace() || matches!(c, ')' | '(' | '&' | '|' | ',' | ']' | '}')
            })
            .unwrap_or(r.len());
        if len == 0 {
            return Err(invalid(format!("expected a value at '{r}'")));
        }
        let word = &r[..len];
        self.i += len;
        Ok(match word.parse::<f64>() {
            Ok(n) if n.is_finite() && !word.contains('*') => Value::Num(n, word.to_owned()),
            _ => Value::Str(word.to_owned()),
        })
    }

    fn selector(&mut self) -> Result<Selector> {
        if !self.eat("$") {
            return Err(invalid(format!(
                "expected a selector ($.field) at '{}'",
                self.rest()
            )));
        }
        let mut steps = Vec::new();
        loop {
            let mut r = self.rest();
            if r.starts_with(".[") {
                // `$.['key']`: the bracket form after a dot.
                self.i += 1;
                r = &r[1..];
            }
            if let Some(after) = r.strip_prefix('.') {
                let len = after
                    .find(|c: char| {
                        !(c.is_alphanumeric() || matches!(c, '_' | '-' | '@' | '$' | ':'))
                    })
                    .unwrap_or(after.len());
                if len == 0 {
                    return Err(invalid(format!("expected a field name at '{r}'")));
                }
                steps.push(Step::Key(after[..len].to_owned()));
                self.i += 1 + len;
            } else if let Some(after) = r.strip_prefix('[') {
                let close = after
                    .find(']')
                    .ok_or_else(|| invalid("missing ']' in selector"))?;
                let inner = after[..close].trim();
                let step = if let Some(k) = inner
                    .strip_prefix('\'')
                    .and_then(|k| k.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                {
                    Step::Key(k.to_owned())
                } else {
                    Step::Index(
                        inner
                            .parse()
                            .map_err(|_| invalid(format!("bad array index '{inner}'")))?,
                    )
                };
                steps.push(step);
                self.i += 1 + close + 1;
            } else {
                break;
            }
        }
        if steps.is_empty() {
            return Err(invalid("a selector needs a field ($.field)"));
        }
        Ok(Selector(steps))
    }
}

// ---------------------------------------------------------------------------------------
// Space-delimited patterns

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// `...`: any number of fields.
    Any,
    /// A named field, which the conditions (over any named field) may test.
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Delimited {
    entries: Vec<Entry>,
    conditions: Vec<Expr<String>>,
}

impl Delimited {
    fn parse(body: &str) -> Result<Delimited> {
        let mut entries = Vec::new();
        let mut conditions = Vec::new();
        for raw in split_entries(body)? {
            let raw = raw.trim();
            if raw == "..." {
                entries.push(Entry::Any);
                continue;
            }
            let name_len = raw
                .find(|c: char| c.is_whitespace() || "=!<>&|()".contains(c))
                .unwrap_or(raw.len());
            let name = &raw[..name_len];
            if name.is_empty() {
                return Err(invalid(format!("a field needs a name: '{raw}'")));
            }
            entries.push(Entry::Named(name.to_owned()));
            if raw[name_len..].trim().is_empty() {
                continue;
            }
            let mut parser = Parser::new(raw);
            let expr = parser.expr(&mut |p| {
                p.ws();
                let r = p.rest();
                let len = r
                    .find(|c: char| c.is_whitespace() || "=!<>&|()".contains(c))
                    .unwrap_or(r.len());
                if len == 0 {
                    return Err(invalid(format!("expected a field name at '{r}'")));
                }
                p.i += len;
                Ok(r[..len].to_owned())
            })?;
            parser.end()?;
            conditions.push(expr);
        }
        if entries.is_empty() {
            return Err(invalid(
                "a space-delimited pattern needs at least one field",
            ));
        }
        let known: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Named(n) => Some(n.as_str()),
                Entry::Any => None,
            })
            .collect();
        for c in &conditions {
            let mut unknown = None;
            c.eval(&mut |f: &String, _| {
                if !known.contains(&f.as_str()) {
                    unknown = Some(f.clone());
                }
                true
            });
            if let Some(f) = unknown {
                return Err(invalid(format!(
                    "the condition names '{f}', which is no field"
                )));
            }
        }
        Ok(Delimited {
            entries,
            conditions,
        })
    }

    fn matches(&self, message: &str) -> bool {
        let fields = tokenize(message);
        let mut bound: Vec<Option<&str>> = vec![None; self.entries.len()];
        self.bind(0, 0, &fields, &mut bound)
    }

    /// Binds entries from `ei` to fields from `fi`, trying every split `...` allows, and
    /// checks the conditions once all are bound.
    fn bind<'m>(
        &self,
        ei: usize,
        fi: usize,
        fields: &[&'m str],
        bound: &mut Vec<Option<&'m str>>,
    ) -> bool {
        if ei == self.entries.len() {
            return fi == fields.len() && self.check(bound);
        }
        match &self.entries[ei] {
            Entry::Any => (fi..=fields.len()).any(|k| self.bind(ei + 1, k, fields, bound)),
            Entry::Named(_) => {
                let Some(f) = fields.get(fi) else {
                    return false;
                };
                bound[ei] = Some(f);
                self.bind(ei + 1, fi + 1, fields, bound)
            }
        }
    }

    fn check(&self, bound: &[Option<&str>]) -> bool {
        let lookup = |name: &str| {
            self.entries
                .iter()
                .position(|e| matches!(e, Entry::Named(n) if n == name))
                .and_then(|i| bound[i])
        };
        self.conditions
            .iter()
            .all(|c| c.eval(&mut |f, cond| cond.test_text(lookup(f))))
    }
}

/// Splits a delimited body on commas outside quotes.
fn split_entries(body: &str) -> Result<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_quote {
        return Err(invalid("unterminated string"));
    }
    let last = &body[start..];
    if !(out.is_empty() && last.trim().is_empty()) {
        out.push(last);
    }
    if out.iter().any(|e| e.trim().is_empty()) {
        return Err(invalid("an empty field"));
    }
    Ok(out)
}

/// A message's fields: split on spaces, `"..."` and `[...]` each one field without their
/// delimiters.
fn tokenize(m: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = m.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            open @ (b'"' | b'[') => {
                let close = if open == b'"' { b'"' } else { b']' };
                match memchr::memchr(close, &b[i + 1..]) {
                    Some(j) => {
                        out.push(&m[i + 1..i + 1 + j]);
                        i += j + 2;
                    }
                    None => {
                        out.push(&m[i..]);
                        i = b.len();
                    }
                }
            }
            _ => {
                let j = b[i..]
                    .iter()
                    .position(|&c| c == b' ' || c == b'\t')
                    .map_or(b.len(), |j| i + j);
                out.push(&m[i..j]);
                i = j;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(pattern: &str, cases: &[(&str, bool)]) {
        let p = FilterPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        for (m, want) in cases {
            assert_eq!(p.matches(m), *want, "pattern {pattern:?} on {m:?}");
        }
    }

    const E400: &str = "[ERROR 400] BAD REQUEST";
    const E401: &str = "[ERROR 401] UNAUTHORIZED REQUEST";
    const E419: &str = "[ERROR 419] MISSING ARGUMENTS";
    const E420: &str = "[ERROR 420] INVALID ARGUMENTS";
    const E500: &str = "[ERROR 500] INTERNAL SERVER ERROR";
    const OK200: &str = "[SUCCESS 200] AUTHORIZED REQUEST";

    #[test]
    fn terms_from_the_aws_examples() {
        let all = [E400, E401, E419, E420, E500, OK200];
        let table: [(&str, [bool; 6]); 10] = [
            ("", [true; 6]),
            ("\"\"", [true; 6]),
            ("ERROR", [true, true, true, true, true, false]),
            ("ERROR ARGUMENTS", [false, false, true, true, false, false]),
            (
                "\"ERROR\" \"ARGUMENTS\"",
                [false, false, true, true, false, false],
            ),
            (
                "?ARGUMENTS ?SERVER",
                [false, false, true, true, true, false],
            ),
            (
                "\"INTERNAL SERVER ERROR\"",
                [false, false, false, false, true, false],
            ),
            ("ERROR -ARGUMENTS", [true, true, false, false, true, false]),
            // A term starts a word: AUTHORIZED is not found inside UNAUTHORIZED.
            ("AUTHORIZED", [false, false, false, false, false, true]),
            ("\"ERROR 4\"", [true, true, true, true, false, false]),
        ];
        for (pattern, want) in table {
            let cases: Vec<(&str, bool)> = all.iter().copied().zip(want).collect();
            check(pattern, &cases);
        }
        check(
            "error",
            &[
                ("INFO Warm Up Finished with 0 invoke errors", true),
                ("suberror", false),
                ("ERROR", false),
            ],
        );
        check(
            "\"user@example.com\"",
            &[
                ("login user@example.com ok", true),
                ("xuser@example.com", false),
            ],
        );
        check("- x", &[("- x", true), ("x", false)]);
    }

    const EVENT: &str = r#"{
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": null,
        "cluster.name": "c",
        "ThisFlag": true,
        "OtherFlag": false,
        "bandwidth": 100,
        "latency": 50.5,
        "user": {"id": 1, "email": "John.Doe@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "code": 404
    }"#;

    #[test]
    fn json_from_the_aws_examples() {
        for (pattern, want) in [
            ("{ $.eventType = \"UpdateTrail\" }", true),
            ("{ $.eventType = \"Update*\" }", true),
            ("{ $.eventType = UpdateTrail }", true),
            ("{ $.eventType != \"UpdateTrail\" }", false),
            ("{ $.sourceIPAddress != 123.123.* }", true),
            ("{ $.sourceIPAddress = 111.111.* }", true),
            ("{ $.arrayKey[0] = \"value\" }", true),
            ("{ $.arrayKey[1] = \"value\" }", false),
            ("{ $.objectList[1].id = 2 }", true),
            ("{ $.objectList[5].id = 2 }", false),
            ("{ $.SomeObject IS NULL }", true),
            ("{ $.eventType IS NULL }", false),
            ("{ $.SomeOtherObject NOT EXISTS }", true),
            ("{ $.SomeObject NOT EXISTS }", false),
            ("{ $.ThisFlag IS TRUE }", true),
            ("{ $.OtherFlag IS FALSE }", true),
            ("{ $.OtherFlag IS TRUE }", false),
            ("{ $.bandwidth > 75 }", true),
            ("{ $.bandwidth >= 100 }", true),
            ("{ $.bandwidth < 100 }", false),
            ("{ $.latency <= 50.5 }", true),
            ("{ $.latency = 50.5 }", true),
            ("{ $.bandwidth != 100 }", false),
            ("{ $.code = 4* }", true),
            ("{ $.missing > 1 }", false),
            ("{ $.missing != \"x\" }", false),
            ("{ $.['cluster.name'] = \"c\" }", true),
            (
                "{ ($.user.id = 1) && ($.users[0].email = \"John.Doe@example.com\") }",
                true,
            ),
            (
                "{ ($.user.id = 2 && $.users[0].email = \"nonmatch\") || $.actions[2] = \"GET\" }",
                false,
            ),
            (
                "{ ($.user.id = 2 && $.users[0].email = \"nonmatch\") || $.actions[0] = \"GET\" }",
                true,
            ),
            (
                "{ $.user.email = \"John.Doe@example.com\" || $.actions[2] = \"GET\" }",
                true,
            ),
            (
                "{ $.user.id = 1 && $.bandwidth > 200 || $.code = 404 }",
                true,
            ),
            (
                "{ $.user.id = 1 && ($.bandwidth > 200 || $.code = 500) }",
                false,
            ),
        ] {
            check(pattern, &[(EVENT, want)]);
        }
        // Not JSON: no JSON pattern matches.
        check(
            "{ $.level NOT EXISTS }",
            &[
                ("plain text", false),
                ("{\"level\": 1}", false),
                ("{}", true),
            ],
        );
    }

    const APACHE: &str =
        r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.html HTTP/1.0" 404 1534"#;

    #[test]
    fn space_delimited_from_the_aws_examples() {
        for (pattern, want) in [
            (
                "[ip, user, username, timestamp, request, status_code, bytes]",
                true,
            ),
            (
                "[ip, user, username, timestamp, request, status_code]",
                false,
            ),
            (
                "[ip, user, username, timestamp, request = \"*html*\", status_code = 4*, bytes]",
                true,
            ),
            (
                "[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]",
                true,
            ),
            (
                "[ip, user, username, timestamp, request = \"*gif*\", status_code, bytes]",
                false,
            ),
            ("[ip, user, ..., status_code = 404, size]", true),
            ("[ip, user, ..., status_code = 500, size]", false),
            ("[..., status_code, bytes > 1000]", true),
            ("[..., status_code, bytes > 2000]", false),
            ("[ip = 127.0.0.1, ...]", true),
            ("[ip != 127.0.0.*, ...]", false),
            (
                "[..., timestamp = \"10/Oct/2000:13:25:15 -0700\", request, status, bytes]",
                true,
            ),
            (
                "[ip, user, username, timestamp, request, status_code = 404 || status_code = 410, bytes]",
                true,
            ),
            (
                "[ip, user, username, timestamp, request, status_code = 4* && status_code != 404, bytes]",
                false,
            ),
            (
                "[ip, user, username, timestamp, request, status_code >= 400 && status_code < 500, bytes]",
                true,
            ),
            ("[...]", true),
            ("[..., a, b, c, d, e, f, g]", true),
            ("[..., a, b, c, d, e, f, g, h]", false),
        ] {
            check(pattern, &[(APACHE, want)]);
        }
        check(
            "[w1=ERROR, w2]",
            &[
                ("ERROR 400", true),
                ("ERROR", false),
                ("WARN 400", false),
                ("ERROR 400 x", false),
            ],
        );
    }

    #[test]
    fn tokenizes_like_aws() {
        assert_eq!(
            tokenize(APACHE),
            [
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /apache_pb.html HTTP/1.0",
                "404",
                "1534"
            ]
        );
        assert_eq!(tokenize("  a  b\t\"c d\" [e"), ["a", "b", "c d", "[e"]);
    }

    #[test]
    fn refuses_what_aws_refuses() {
        for bad in [
            "{ $.a = 1",
            "{ a = 1 }",
            "{ $. = 1 }",
            "{ $.a }",
            "{ $.a = }",
            "{ $.a > \"x\" }",
            "{ ($.a = 1 }",
            "{ $.a = 1 } x",
            "{ $.a IS MAYBE }",
            "{ $.a NOT THERE }",
            "{ $.a[x] = 1 }",
            "[a, b",
            "[]",
            "[a, , b]",
            "[a = ]",
            "[a = 1, b = \"x]",
            "[a, b = 1 && c = 2]",
            "\"unterminated",
            "%regex%",
        ] {
            let e = FilterPattern::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert_eq!(e.code(), "InvalidParameterException", "{bad}");
        }
        assert!(FilterPattern::parse(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn required_literal_for_prefiltering() {
        for (pattern, want) in [
            ("ERROR", Some("ERROR")),
            ("ERROR ARGUMENTS", Some("ARGUMENTS")),
            ("?ERROR ?WARN", None),
            ("-ERROR", None),
            ("\"say \\\"hi\\\"\"", None),
            ("{ $.a = 1 }", None),
            ("", None),
        ] {
            assert_eq!(
                FilterPattern::parse(pattern).unwrap().required_literal(),
                want,
                "{pattern}"
            );
        }
        assert!(FilterPattern::parse("").unwrap().matches_all());
        assert!("ERROR".parse::<FilterPattern>().is_ok());
    }

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("*b*", "abc", true),
            ("a*c*e", "abcde", true),
            ("a*d", "abc", false),
            ("*", "", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
        ] {
            assert_eq!(glob(p, s), want, "{p} {s}");
        }
    }
}

//! Compiled match patterns: the `*`/`?` wildcards of actions, resources and `...Like`
//! conditions, and the `${key}` policy variables of 2012-10-17 documents.
//!
//! A pattern is compiled once, when its policy is written, into segments split at `*`;
//! matching is then a left-to-right scan with no allocation. Invariants: case-insensitive
//! patterns hold their literals lowercased (so matching folds only the text); a variable
//! resolves to the first value of its context key, and an absent key makes the pattern
//! match nothing (AWS: a statement whose variable has no value does not apply).

use crate::eval::Context;

/// How a value is compiled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (else literal characters).
    pub wildcards: bool,
    /// `${...}` is a policy variable (only in version 2012-10-17 documents).
    pub variables: bool,
    /// ASCII case is ignored (actions, `StringEqualsIgnoreCase`).
    pub ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    kind: Kind,
    ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `*` alone: matches everything.
    Any,
    /// No wildcard and no variable: a plain comparison.
    Exact(Box<str>),
    /// Segments between `*`s: the first is anchored at the start, the last at the end,
    /// and a pattern with no `*` has exactly one, anchored at both.
    Glob(Box<[Box<[Atom]>]>),
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Lit(Box<str>),
    /// `?`: exactly one character.
    One,
    /// `${key}` or `${key, 'default'}`; the key is lowercased like the context's.
    Var {
        key: Box<str>,
        default: Option<Box<str>>,
    },
}

impl Pattern {
    pub(crate) fn compile(source: &str, syntax: Syntax) -> Pattern {
        let ignore_case = syntax.ignore_case;
        if syntax.wildcards && source == "*" {
            return Pattern {
                kind: Kind::Any,
                ignore_case,
            };
        }
        let mut segments: Vec<Box<[Atom]>> = Vec::new();
        let mut atoms: Vec<Atom> = Vec::new();
        let mut lit = String::new();
        let mut simple = true;
        let mut rest = source;
        while let Some(c) = rest.chars().next() {
            if syntax.variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                let inner = &rest[2..end];
                rest = &rest[end + 1..];
                match inner.trim() {
                    // AWS's escapes for characters that are otherwise special.
                    "*" => lit.push('*'),
                    "?" => lit.push('?'),
                    "$" => lit.push('$'),
                    inner => {
                        simple = false;
                        flush(&mut lit, &mut atoms, ignore_case);
                        atoms.push(variable(inner));
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if syntax.wildcards => {
                    simple = false;
                    flush(&mut lit, &mut atoms, ignore_case);
                    segments.push(std::mem::take(&mut atoms).into_boxed_slice());
                }
                '?' if syntax.wildcards => {
                    simple = false;
                    flush(&mut lit, &mut atoms, ignore_case);
                    atoms.push(Atom::One);
                }
                c => lit.push(c),
            }
        }
        if simple {
            let text = if ignore_case {
                lit.to_ascii_lowercase()
            } else {
                lit
            };
            return Pattern {
                kind: Kind::Exact(text.into()),
                ignore_case,
            };
        }
        flush(&mut lit, &mut atoms, ignore_case);
        segments.push(atoms.into_boxed_slice());
        Pattern {
            kind: Kind::Glob(segments.into_boxed_slice()),
            ignore_case,
        }
    }

    /// Whether `text` matches, resolving variables from `ctx`.
    pub(crate) fn matches(&self, text: &str, ctx: &Context) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact(s) => {
                if self.ignore_case {
                    s.eq_ignore_ascii_case(text)
                } else {
                    **s == *text
                }
            }
            Kind::Glob(segments) => self.glob(segments, text, ctx),
        }
    }

    fn glob(&self, segments: &[Box<[Atom]>], text: &str, ctx: &Context) -> bool {
        let (first, rest) = match segments.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some(mut pos) = self.match_at(first, text, 0, ctx) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return pos == text.len();
        };
        // Each middle segment at its leftmost place: that leaves the most text for the
        // segments after it, so no other choice can succeed where this one fails.
        for seg in middle {
            let mut found = None;
            for start in pos..=text.len() {
                if text.is_char_boundary(start)
                    && let Some(end) = self.match_at(seg, text, start, ctx)
                {
                    found = Some(end);
                    break;
                }
            }
            match found {
                Some(end) => pos = end,
                None => return false,
            }
        }
        (pos..=text.len()).any(|start| {
            text.is_char_boundary(start)
                && self.match_at(last, text, start, ctx) == Some(text.len())
        })
    }

    /// Where `atoms` end when matched at `pos`, if they match there.
    fn match_at(&self, atoms: &[Atom], text: &str, mut pos: usize, ctx: &Context) -> Option<usize> {
        for atom in atoms {
            match atom {
                Atom::Lit(s) => pos = self.literal(s, text, pos)?,
                Atom::One => pos += text[pos..].chars().next()?.len_utf8(),
                Atom::Var { key, default } => {
                    let value = match ctx.first_lower(key) {
                        Some(v) => v,
                        None => default.as_deref()?,
                    };
                    pos = self.literal(value, text, pos)?;
                }
            }
        }
        Some(pos)
    }

    fn literal(&self, lit: &str, text: &str, pos: usize) -> Option<usize> {
        let end = pos + lit.len();
        let candidate = text.as_bytes().get(pos..end)?;
        let same = if self.ignore_case {
            candidate.eq_ignore_ascii_case(lit.as_bytes())
        } else {
            candidate == lit.as_bytes()
        };
        (same && text.is_char_boundary(end)).then_some(end)
    }
}

fn flush(lit: &mut String, atoms: &mut Vec<Atom>, ignore_case: bool) {
    if !lit.is_empty() {
        let text = std::mem::take(lit);
        let text = if ignore_case {
            text.to_ascii_lowercase()
        } else {
            text
        };
        atoms.push(Atom::Lit(text.into()));
    }
}

/// `aws:username` or `aws:username, 'default'` (AWS's default-value form).
fn variable(inner: &str) -> Atom {
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let default = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(default);
            (key.trim(), Some(default.into()))
        }
        None => (inner, None),
    };
    Atom::Var {
        key: key.to_ascii_lowercase().into(),
        default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOB: Syntax = Syntax {
        wildcards: true,
        variables: true,
        ignore_case: false,
    };
    const ACTION: Syntax = Syntax {
        wildcards: true,
        variables: false,
        ignore_case: true,
    };

    #[test]
    fn table() {
        let mut ctx = Context::new();
        ctx.set("aws:username", "alice");
        let cases: &[(&str, Syntax, &str, bool)] = &[
            ("*", GLOB, "", true),
            ("*", GLOB, "anything:at/all", true),
            ("abc", GLOB, "abc", true),
            ("abc", GLOB, "abC", false),
            ("abc", ACTION, "ABC", true),
            ("lambda:Get*", ACTION, "lambda:getfunction", true),
            ("lambda:Get*", ACTION, "LAMBDA:GETFUNCTION", true),
            ("lambda:Get*", ACTION, "lambda:ListFunctions", false),
            ("lambda:*Function", ACTION, "lambda:DeleteFunction", true),
            ("lambda:*Function", ACTION, "lambda:DeleteFunctions", false),
            ("a*b*c", GLOB, "abc", true),
            ("a*b*c", GLOB, "axxbyyc", true),
            ("a*b*c", GLOB, "axxbyycd", false),
            ("a*b*c", GLOB, "acb", false),
            ("a*a", GLOB, "a", false),
            ("a*a", GLOB, "aa", true),
            ("*ab", GLOB, "aab", true),
            ("a?c", GLOB, "abc", true),
            ("a?c", GLOB, "ac", false),
            ("a?c", GLOB, "aéc", true),
            ("a?c", GLOB, "abbc", false),
            ("*?", GLOB, "", false),
            ("*?", GLOB, "x", true),
            ("f*", GLOB, "f:prod", true),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f*",
                GLOB,
                "arn:aws:lambda:us-east-1:123456789012:function:fn",
                true,
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                GLOB,
                "arn:aws:lambda:us-east-1:123456789012:function:f:prod",
                false,
            ),
            ("home/${aws:username}/*", GLOB, "home/alice/x", true),
            ("home/${aws:username}/*", GLOB, "home/bob/x", false),
            ("home/${aws:userid}/*", GLOB, "home//x", false),
            ("home/${aws:userid, 'none'}/*", GLOB, "home/none/x", true),
            ("a${*}b", GLOB, "a*b", true),
            ("a${*}b", GLOB, "axb", false),
            ("${aws:UserName}", GLOB, "alice", true),
        ];
        for (pattern, syntax, text, want) in cases {
            let p = Pattern::compile(pattern, *syntax);
            assert_eq!(p.matches(text, &ctx), *want, "{pattern:?} against {text:?}");
        }
    }

    #[test]
    fn literal_syntax_treats_wildcards_and_old_variables_as_text() {
        let ctx = Context::new();
        let literal = Syntax {
            wildcards: false,
            variables: false,
            ignore_case: false,
        };
        assert!(Pattern::compile("a*", literal).matches("a*", &ctx));
        assert!(!Pattern::compile("a*", literal).matches("ab", &ctx));
        assert!(Pattern::compile("${x}", literal).matches("${x}", &ctx));
    }
}

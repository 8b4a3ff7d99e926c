//! Function names in every form AWS accepts: `name`, `name:qualifier`,
//! `account:function:name[:qualifier]` and `arn:aws:lambda:region:account:function:name[:qualifier]`.

use crate::LambdaError;

/// The region and account this server answers for.
#[derive(Debug, Clone)]
pub struct Scope {
    pub region: String,
    pub account_id: String,
}

impl Scope {
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, name
        )
    }

    pub fn qualified_arn(&self, name: &str, qualifier: &str) -> String {
        format!("{}:{}", self.function_arn(name), qualifier)
    }
}

/// A parsed reference to a function, possibly qualified with a version or alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub qualifier: Option<String>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_qualifier(s: &str) -> bool {
    s == "$LATEST"
        || (!s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

impl FunctionRef {
    /// Parses `input` (any accepted form) and reconciles it with a separate `Qualifier`
    /// parameter. ARNs for another region or account name no function here.
    pub fn parse(
        input: &str,
        qualifier: Option<&str>,
        scope: &Scope,
    ) -> Result<FunctionRef, LambdaError> {
        let invalid = || {
            LambdaError::Validation(format!(
                "1 validation error detected: Value '{input}' at 'functionName' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: \
                 (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
            ))
        };
        if input.is_empty() || input.len() > 256 {
            return Err(invalid());
        }
        let parts: Vec<&str> = input.split(':').collect();
        let (region, account, rest): (Option<&str>, Option<&str>, &[&str]) = match parts.as_slice()
        {
            [
                "arn",
                partition,
                "lambda",
                region,
                account,
                "function",
                rest @ ..,
            ] if partition.starts_with("aws") => (Some(region), Some(account), rest),
            [account, "function", rest @ ..] => (None, Some(account), rest),
            rest => (None, None, rest),
        };
        let (name, derived) = match rest {
            [name] => (*name, None),
            [name, q] => (*name, Some(*q)),
            _ => return Err(invalid()),
        };
        if !valid_name(name) || derived.is_some_and(|q| !valid_qualifier(q)) {
            return Err(invalid());
        }
        if let Some(account) = account
            && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid());
        }
        let qualifier = match (derived, qualifier.filter(|q| !q.is_empty())) {
            (Some(a), Some(b)) if a != b => {
                return Err(LambdaError::InvalidParameter(
                    "The derived qualifier from the function name does not match the specified qualifier."
                        .into(),
                ));
            }
            (Some(a), _) => Some(a.to_owned()),
            (None, Some(b)) => {
                if !valid_qualifier(b) {
                    return Err(LambdaError::Validation(format!(
                        "1 validation error detected: Value '{b}' at 'qualifier' failed to satisfy constraint: \
                         Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
                    )));
                }
                Some(b.to_owned())
            }
            (None, None) => None,
        };
        let foreign = region.is_some_and(|r| r != scope.region)
            || account.is_some_and(|a| a != scope.account_id);
        if foreign {
            return Err(LambdaError::NotFound(format!(
                "Function not found: {input}"
            )));
        }
        Ok(FunctionRef {
            name: name.to_owned(),
            qualifier,
        })
    }

    /// True when the reference names the mutable `$LATEST` (explicitly or by default).
    pub fn is_latest(&self) -> bool {
        self.qualifier.as_deref().is_none_or(|q| q == "$LATEST")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        }
    }

    fn parse(s: &str, q: Option<&str>) -> Result<FunctionRef, LambdaError> {
        FunctionRef::parse(s, q, &scope())
    }

    #[test]
    fn accepts_every_aws_form() {
        let plain = FunctionRef {
            name: "my-fn_1".into(),
            qualifier: None,
        };
        for input in [
            "my-fn_1",
            "000000000000:function:my-fn_1",
            "arn:aws:lambda:us-east-1:000000000000:function:my-fn_1",
        ] {
            assert_eq!(parse(input, None).unwrap(), plain, "{input}");
        }
        let q = parse(
            "arn:aws:lambda:us-east-1:000000000000:function:f:prod",
            None,
        )
        .unwrap();
        assert_eq!(q.qualifier.as_deref(), Some("prod"));
        assert_eq!(
            parse("f:$LATEST", None).unwrap().qualifier.as_deref(),
            Some("$LATEST")
        );
        assert_eq!(
            parse("f", Some("3")).unwrap().qualifier.as_deref(),
            Some("3")
        );
        assert!(parse("f:3", Some("3")).is_ok());
    }

    #[test]
    fn rejects_malformed_and_foreign_names() {
        for bad in [
            "",
            "a b",
            "f:1:2",
            "arn:aws:lambda:us-east-1:12:function:f",
            "f/x",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(parse(bad, None), Err(LambdaError::Validation(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("arn:aws:lambda:eu-west-1:000000000000:function:f", None),
            Err(LambdaError::NotFound(_))
        ));
        assert!(matches!(
            parse("111111111111:function:f", None),
            Err(LambdaError::NotFound(_))
        ));
        assert!(matches!(
            parse("f:1", Some("2")),
            Err(LambdaError::InvalidParameter(_))
        ));
    }
}

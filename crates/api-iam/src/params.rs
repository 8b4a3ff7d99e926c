//! Reading the query protocol's parameters as IAM's model names them: scalars, lists
//! (`TagKeys.member.1`), tags (`Tags.member.1.Key`), pagination (`Marker`, `MaxItems`).

use axum::http::StatusCode;
use stratus_iam::{IamError, Listing, Tag};
use stratus_protocol::AwsError;
use stratus_protocol::query::Params;

/// Why an operation failed: the domain's error or one of the wire's own.
pub(crate) enum Failure {
    Iam(IamError),
    Aws(AwsError),
}

impl From<IamError> for Failure {
    fn from(e: IamError) -> Failure {
        Failure::Iam(e)
    }
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Failure {
        Failure::Aws(e)
    }
}

impl Failure {
    pub(crate) fn into_aws(self) -> AwsError {
        match self {
            Failure::Aws(e) => e,
            Failure::Iam(e) if e.is_server_fault() => {
                let mut err = AwsError::internal(&e);
                err.code = e.code();
                err
            }
            Failure::Iam(e) => AwsError::new(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                e.code(),
                e.to_string(),
            ),
        }
    }
}

pub(crate) fn validation(message: String) -> Failure {
    Failure::Aws(AwsError::new(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        message,
    ))
}

/// The model's member name as AWS's validation messages spell it: `userName`.
fn member(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

pub(crate) fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, Failure> {
    p.get(name).ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            member(name)
        ))
    })
}

pub(crate) fn int(p: &Params, name: &str) -> Result<Option<i64>, Failure> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            validation(format!(
                "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a number",
                member(name)
            ))
        }),
    }
}

pub(crate) fn boolean(p: &Params, name: &str) -> Result<bool, Failure> {
    match p.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a boolean",
            member(name)
        ))),
    }
}

/// `<name>.member.1`, `<name>.member.2`, ... until one is missing.
pub(crate) fn members(p: &Params, name: &str) -> Vec<String> {
    (1..)
        .map_while(|i| p.get(&format!("{name}.member.{i}")).map(str::to_owned))
        .collect()
}

/// `<name>.member.N.Key` / `.Value`.
pub(crate) fn tags(p: &Params, name: &str) -> Result<Vec<Tag>, Failure> {
    let mut out = Vec::new();
    for i in 1.. {
        let Some(key) = p.get(&format!("{name}.member.{i}.Key")) else {
            break;
        };
        let value = p.get(&format!("{name}.member.{i}.Value")).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at 'tags.{i}.member.value' failed to satisfy constraint: Member must not be null"
            ))
        })?;
        out.push(Tag {
            key: key.into(),
            value: value.into(),
        });
    }
    Ok(out)
}

pub(crate) fn listing(p: &Params) -> Result<Listing<'_>, Failure> {
    Ok(Listing {
        marker: p.get("Marker"),
        max_items: int(p, "MaxItems")?,
        path_prefix: p.get("PathPrefix"),
    })
}

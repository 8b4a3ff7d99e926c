//! Amazon Resource Names: `arn:<partition>:<service>:<region>:<account>:<resource>`.

use std::fmt;
use std::str::FromStr;

/// A parsed ARN. The resource part is kept whole (`function:name:qualifier`,
/// `log-group:/aws/lambda/f:*`): each service reads its own resource syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account_id: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid ARN")]
pub struct ArnError(pub String);

impl FromStr for Arn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<Arn, ArnError> {
        let bad = || ArnError(s.to_owned());
        let mut parts = s.splitn(6, ':');
        if parts.next() != Some("arn") {
            return Err(bad());
        }
        let mut next = || parts.next().ok_or_else(bad);
        let (partition, service, region, account_id, resource) =
            (next()?, next()?, next()?, next()?, next()?);
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(bad());
        }
        Ok(Arn {
            partition: partition.into(),
            service: service.into(),
            region: region.into(),
            account_id: account_id.into(),
            resource: resource.into(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account_id, self.resource
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for s in [
            "arn:aws:lambda:us-east-1:123456789012:function:f:prod",
            "arn:aws:logs:eu-west-1:000000000000:log-group:/aws/lambda/f:*",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:s3:::bucket/key:with:colons",
        ] {
            let arn: Arn = s.parse().unwrap();
            assert_eq!(arn.to_string(), s);
        }
        let arn: Arn = "arn:aws:sqs:us-east-1:1:q".parse().unwrap();
        assert_eq!(
            (
                arn.service.as_str(),
                arn.region.as_str(),
                arn.resource.as_str()
            ),
            ("sqs", "us-east-1", "q")
        );
    }

    #[test]
    fn refuses_what_is_not_an_arn() {
        for s in [
            "",
            "arn",
            "arn:aws",
            "arn:aws:lambda:r:a",
            "urn:aws:s3:::b",
            "arn::s3:::b",
            "arn:aws:s3:::",
        ] {
            assert!(s.parse::<Arn>().is_err(), "{s}");
        }
    }
}

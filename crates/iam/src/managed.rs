//! AWS's managed policies that Stratus knows (`arn:aws:iam::aws:policy/...`): the ones AWS's
//! tutorials attach (Lambda's execution roles, administrator and read-only access), each
//! with a document over the services Stratus offers.
//!
//! Invariant: the catalog is constant. An account's attachments of these policies are kept
//! in the store like its own policies' (see `service.rs`); the documents never are.

use crate::model::ManagedPolicy;

/// `(path, name, description, document)`.
const CATALOG: &[(&str, &str, &str, &str)] = &[
    (
        "/",
        "AdministratorAccess",
        "Provides full access to AWS services and resources.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "/job-function/",
        "ViewOnlyAccess",
        "This policy grants permissions to view resources and basic metadata across all AWS services.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:List*","lambda:GetAccountSettings","logs:DescribeLogGroups","logs:DescribeLogStreams","iam:List*","iam:GetAccountSummary"],"Resource":"*"}]}"#,
    ),
    (
        "/",
        "PowerUserAccess",
        "Provides full access to AWS services and resources, but does not allow management of Users and groups.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":["iam:*","organizations:*","account:*"],"Resource":"*"},{"Effect":"Allow","Action":["iam:CreateServiceLinkedRole","iam:DeleteServiceLinkedRole","iam:ListRoles","organizations:DescribeOrganization","account:ListRegions","account:GetAccountInformation"],"Resource":"*"}]}"#,
    ),
    (
        "/",
        "ReadOnlyAccess",
        "Provides read-only access to AWS services and resources.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:Get*","lambda:List*","logs:Describe*","logs:Get*","logs:FilterLogEvents","logs:StartQuery","logs:StopQuery","logs:TestMetricFilter","iam:Get*","iam:List*","iam:GenerateCredentialReport","iam:GenerateServiceLastAccessedDetails","iam:SimulateCustomPolicy","iam:SimulatePrincipalPolicy","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
    ),
    (
        "/",
        "IAMFullAccess",
        "Provides full access to IAM via the AWS Management Console.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","organizations:DescribeAccount","organizations:DescribeOrganization","organizations:DescribeOrganizationalUnit","organizations:DescribePolicy","organizations:ListChildren","organizations:ListParents","organizations:ListPoliciesForTarget","organizations:ListRoots","organizations:ListPolicies","organizations:ListTargetsForPolicy"],"Resource":"*"}]}"#,
    ),
    (
        "/",
        "IAMReadOnlyAccess",
        "Provides read only access to IAM via the AWS Management Console.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:GenerateCredentialReport","iam:GenerateServiceLastAccessedDetails","iam:Get*","iam:List*","iam:SimulateCustomPolicy","iam:SimulatePrincipalPolicy"],"Resource":"*"}]}"#,
    ),
    (
        "/",
        "AWSLambda_FullAccess",
        "Grants full access to AWS Lambda service, AWS Lambda console features, and other related AWS services.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:*","logs:DescribeLogGroups","logs:DescribeLogStreams","logs:GetLogEvents","logs:FilterLogEvents","iam:GetPolicy","iam:GetPolicyVersion","iam:GetRole","iam:GetRolePolicy","iam:ListAttachedRolePolicies","iam:ListRolePolicies","iam:ListRoles"],"Resource":"*"},{"Effect":"Allow","Action":"iam:PassRole","Resource":"*","Condition":{"StringEquals":{"iam:PassedToService":"lambda.amazonaws.com"}}}]}"#,
    ),
    (
        "/",
        "AWSLambda_ReadOnlyAccess",
        "Grants read-only access to AWS Lambda service, AWS Lambda console features, and other related AWS services.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:Get*","lambda:List*","logs:DescribeLogGroups","logs:DescribeLogStreams","logs:GetLogEvents","logs:FilterLogEvents","iam:GetPolicy","iam:GetPolicyVersion","iam:GetRole","iam:GetRolePolicy","iam:ListAttachedRolePolicies","iam:ListRolePolicies","iam:ListRoles"],"Resource":"*"}]}"#,
    ),
    (
        "/service-role/",
        "AWSLambdaBasicExecutionRole",
        "Provides write permissions to CloudWatch Logs.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}"#,
    ),
    (
        "/service-role/",
        "AWSLambdaRole",
        "Default policy for AWS Lambda service role.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["lambda:InvokeFunction"],"Resource":["*"]}]}"#,
    ),
    (
        "/",
        "AWSLambdaExecute",
        "Provides Put, Get access to S3 and full access to CloudWatch Logs.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:*"],"Resource":"arn:aws:logs:*:*:*"},{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::*"}]}"#,
    ),
    (
        "/",
        "CloudWatchLogsFullAccess",
        "Provides full access to CloudWatch Logs",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:*"],"Resource":"*"}]}"#,
    ),
    (
        "/",
        "CloudWatchLogsReadOnlyAccess",
        "Provides read only access to CloudWatch Logs",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:Describe*","logs:Get*","logs:List*","logs:StartQuery","logs:StopQuery","logs:TestMetricFilter","logs:FilterLogEvents","logs:StartLiveTail","logs:StopLiveTail"],"Resource":"*"}]}"#,
    ),
];

/// When AWS published these (as their `CreateDate`): 2015-02-06T18:39:46Z.
const PUBLISHED_MS: i64 = 1_423_248_000_000;

/// `arn:aws:iam::aws:policy<path><name>`.
fn arn(path: &str, name: &str) -> String {
    format!("arn:aws:iam::aws:policy{path}{name}")
}

/// A stable id for a catalog entry (AWS's are constants too): `ANPA` and 17 base-32
/// characters derived from the name.
fn stable_id(name: &str) -> String {
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // FNV-1a, stretched: any fixed function of the name will do.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::from("ANPA");
    for i in 0..17u8 {
        for b in name.bytes().chain([i]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push(BASE32[(h % 32) as usize] as char);
    }
    out
}

/// The AWS managed policy with this ARN, as a record with no attachments.
pub fn lookup(policy_arn: &str) -> Option<ManagedPolicy> {
    CATALOG
        .iter()
        .find(|(path, name, _, _)| arn(path, name) == policy_arn)
        .map(|e| record(*e))
}

/// Every AWS managed policy Stratus knows, with no attachments, in ARN order.
pub fn all() -> Vec<ManagedPolicy> {
    let mut all: Vec<ManagedPolicy> = CATALOG.iter().map(|e| record(*e)).collect();
    all.sort_by(|a, b| a.arn.cmp(&b.arn));
    all
}

fn record((path, name, description, document): (&str, &str, &str, &str)) -> ManagedPolicy {
    ManagedPolicy {
        name: name.into(),
        id: stable_id(name),
        path: path.into(),
        arn: arn(path, name),
        description: Some(description.into()),
        create_ms: PUBLISHED_MS,
        update_ms: PUBLISHED_MS,
        default_version: "v1".into(),
        versions: vec![crate::model::PolicyVersion {
            id: "v1".into(),
            document: document.into(),
            create_ms: PUBLISHED_MS,
        }],
        next_version: 2,
        attachments: Vec::new(),
        tags: Vec::new(),
        aws_managed: true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_valid_and_stable() {
        let p = lookup("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole").unwrap();
        assert_eq!(p.name, "AWSLambdaBasicExecutionRole");
        assert_eq!(p.id.len(), 21);
        assert_eq!(p.id, lookup(&p.arn).unwrap().id);
        assert!(lookup("arn:aws:iam::aws:policy/AWSLambdaBasicExecutionRole").is_none());
        for p in all() {
            let doc = &p.default_document().unwrap().document;
            serde_json::from_str::<serde_json::Value>(doc).unwrap();
            crate::policy::PolicyDocument::identity(doc).unwrap();
        }
    }
}

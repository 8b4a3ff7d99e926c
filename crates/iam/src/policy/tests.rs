use super::*;

fn stmt(body: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":{body}}}"#)
}

#[test]
fn identity_refusals() {
    let syntax = "Syntax errors in policy.";
    let cases: &[(&str, String, &str)] = &[
        ("not JSON", "not json".into(), syntax),
        ("JSON but not an object", "[1]".into(), syntax),
        ("unknown top-level key", r#"{"Statement":[],"Foo":1}"#.into(), syntax),
        ("no Statement", r#"{"Version":"2012-10-17"}"#.into(), syntax),
        ("empty Statement", stmt("[]"), syntax),
        ("unknown version", r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#.into(), syntax),
        ("numeric version", r#"{"Version":2012,"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#.into(), syntax),
        ("statement not an object", stmt(r#"["x"]"#), syntax),
        ("unknown statement key", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Foo":1}"#), syntax),
        ("no Effect", stmt(r#"{"Action":"s3:*","Resource":"*"}"#), syntax),
        ("bad Effect", stmt(r#"{"Effect":"Maybe","Action":"s3:*","Resource":"*"}"#), syntax),
        ("lowercase Effect", stmt(r#"{"Effect":"allow","Action":"s3:*","Resource":"*"}"#), "The policy failed legacy parsing"),
        ("Action and NotAction", stmt(r#"{"Effect":"Allow","Action":"s3:*","NotAction":"s3:Get*","Resource":"*"}"#), syntax),
        ("Resource and NotResource", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","NotResource":"*"}"#), syntax),
        ("Action a number", stmt(r#"{"Effect":"Allow","Action":5,"Resource":"*"}"#), syntax),
        ("Action array with a number", stmt(r#"{"Effect":"Allow","Action":["s3:*",5],"Resource":"*"}"#), syntax),
        ("Condition not an object", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":"x"}"#), syntax),
        ("Condition operator not an object", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":"x"}}"#), syntax),
        ("unknown condition operator", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}"#), syntax),
        ("condition value an object", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"a:b":{"c":1}}}}"#), syntax),
        ("bad date", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}"#), "The policy failed legacy parsing"),
        ("Sid a number", stmt(r#"{"Sid":1,"Effect":"Allow","Action":"s3:*","Resource":"*"}"#), syntax),
        ("duplicate Sid", stmt(r#"[{"Sid":"a","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"a","Effect":"Deny","Action":"s3:*","Resource":"*"}]"#), "Statement IDs (SID) in a single policy must be unique."),
        ("Principal", stmt(r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}"#), "Policy document should not specify a principal."),
        ("NotPrincipal", stmt(r#"{"Effect":"Allow","NotPrincipal":{"AWS":"123456789012"},"Action":"s3:*","Resource":"*"}"#), "Policy document should not specify a principal."),
        ("no Action", stmt(r#"{"Effect":"Allow","Resource":"*"}"#), "Policy statement must contain actions."),
        ("empty Action", stmt(r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#), "Policy statement must contain actions."),
        ("no Resource", stmt(r#"{"Effect":"Allow","Action":"s3:*"}"#), "Policy statement must contain resources."),
        ("empty NotResource", stmt(r#"{"Effect":"Allow","Action":"s3:*","NotResource":[]}"#), "Policy statement must contain resources."),
        ("action without vendor", stmt(r#"{"Effect":"Allow","Action":"GetObject","Resource":"*"}"#), "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
        ("action with two colons", stmt(r#"{"Effect":"Allow","Action":"s3:Get:Object","Resource":"*"}"#), "Actions/Condition can contain only one colon."),
        ("bad vendor", stmt(r#"{"Effect":"Allow","Action":"s 3:Get","Resource":"*"}"#), "Vendor s 3 is not valid"),
        ("resource not an ARN", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"bucket"}"#), "Resource bucket must be in ARN format or \"*\"."),
        ("bad partition", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:foo:s3:::b"}"#), "Partition \"foo\" is not valid for resource \"arn:foo:s3:*:*:b\"."),
        ("wildcard vendor in resource", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:*:::b"}"#), "Resource vendor must be fully qualified and cannot contain regexes."),
        ("too few ARN parts", stmt(r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:b"}"#), "The policy failed legacy parsing"),
    ];
    for (name, text, want) in cases {
        match PolicyDocument::identity(text) {
            Ok(_) => panic!("{name}: accepted {text}"),
            Err(e) => assert_eq!(e.0, *want, "{name}"),
        }
    }
}

#[test]
fn resource_refusals() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "no Principal",
            r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}"#,
            "Missing required field Principal",
        ),
        (
            "no Principal in one of two",
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
            "Missing required field Principal",
        ),
        (
            "Principal and NotPrincipal",
            r#"{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"sts:AssumeRole"}}"#,
            "Syntax errors in policy.",
        ),
        (
            "Principal a bare string",
            r#"{"Statement":{"Effect":"Allow","Principal":"lambda.amazonaws.com","Action":"sts:AssumeRole"}}"#,
            "Syntax errors in policy.",
        ),
        (
            "empty Principal",
            r#"{"Statement":{"Effect":"Allow","Principal":{},"Action":"sts:AssumeRole"}}"#,
            "Syntax errors in policy.",
        ),
        (
            "unknown principal kind",
            r#"{"Statement":{"Effect":"Allow","Principal":{"Robot":"r2"},"Action":"sts:AssumeRole"}}"#,
            "Invalid principal in policy: \"Robot\":\"r2\"",
        ),
        (
            "AWS not an ARN",
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"sts:AssumeRole"}}"#,
            "Invalid principal in policy: \"AWS\":\"alice\"",
        ),
        (
            "AWS with a wildcard",
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/*"},"Action":"sts:AssumeRole"}}"#,
            "Invalid principal in policy: \"AWS\":\"arn:aws:iam::123456789012:user/*\"",
        ),
        (
            "AWS a short account",
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"1234"},"Action":"sts:AssumeRole"}}"#,
            "Invalid principal in policy: \"AWS\":\"1234\"",
        ),
        (
            "AWS of another service",
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:s3:::bucket"},"Action":"sts:AssumeRole"}}"#,
            "Invalid principal in policy: \"AWS\":\"arn:aws:s3:::bucket\"",
        ),
        (
            "wildcard service",
            r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"*.amazonaws.com"},"Action":"sts:AssumeRole"}}"#,
            "Invalid principal in policy: \"Service\":\"*.amazonaws.com\"",
        ),
        (
            "no Action",
            r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#,
            "Policy statement must contain actions.",
        ),
    ];
    for (name, text, want) in cases {
        match PolicyDocument::resource(text) {
            Ok(_) => panic!("{name}: accepted {text}"),
            Err(e) => assert_eq!(e.0, *want, "{name}"),
        }
    }
}

const BASIC_EXECUTION_ROLE: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents"
            ],
            "Resource": "*"
        }
    ]
}"#;

const LAMBDA_TRUST: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": { "Service": "lambda.amazonaws.com" },
      "Action": "sts:AssumeRole"
    }
  ]
}"#;

const READ_ONLY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "LambdaRead",
      "Effect": "Allow",
      "Action": ["lambda:Get*", "lambda:List*"],
      "Resource": "*"
    },
    {
      "Sid": "Logs",
      "Effect": "Allow",
      "Action": ["logs:Describe*", "logs:Get*", "logs:FilterLogEvents"],
      "Resource": "arn:aws:logs:*:*:log-group:/aws/lambda/*"
    }
  ]
}"#;

#[test]
fn identity_acceptances() {
    let cases: &[(&str, &str, usize)] = &[
        ("AWSLambdaBasicExecutionRole", BASIC_EXECUTION_ROLE, 1),
        ("read-only", READ_ONLY, 2),
        (
            "no Version, single statement",
            r#"{"Statement":{"Effect":"Deny","NotAction":"iam:*","NotResource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}}"#,
            1,
        ),
        (
            "old Version",
            r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            1,
        ),
        (
            "Id and conditions of every family",
            r#"{"Version":"2012-10-17","Id":"x","Statement":[{"Sid":"","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*","Condition":{
            "StringEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]},
            "NumericLessThan":{"s3:max-keys":10},
            "Bool":{"aws:SecureTransport":true},
            "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},
            "DateGreaterThan":{"aws:EpochTime":"1700000000"},
            "IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]},
            "ForAnyValue:StringLike":{"aws:TagKeys":"team*"},
            "ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::*"},
            "Null":{"aws:TokenIssueTime":"true"}}},
            {"Sid":"","Effect":"Deny","Action":"s3:Delete*","Resource":"*"}]}"#,
            2,
        ),
        (
            "unknown operator with nothing under it",
            r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Whatever":{}}}}"#,
            1,
        ),
        (
            "deny everything",
            r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
            1,
        ),
    ];
    for (name, text, n) in cases {
        let doc = PolicyDocument::identity(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.statements().len(), *n, "{name}");
        assert_eq!(doc.text, *text, "{name}: text kept as written");
    }
}

#[test]
fn resource_acceptances() {
    let cases: &[(&str, &str)] = &[
        ("Lambda trust policy", LAMBDA_TRUST),
        (
            "everyone",
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f"}}"#,
        ),
        (
            "AddPermission's shape",
            r#"{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","Condition":{"StringEquals":{"AWS:SourceAccount":"123456789012"},"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::bucket"}}}]}"#,
        ),
        (
            "accounts, roots, roles, users, sessions",
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:role/path/R","arn:aws:iam::111122223333:user/alice","arn:aws:sts::111122223333:assumed-role/R/s","*"]},"Action":"sts:AssumeRole"}}"#,
        ),
        (
            "federated",
            r#"{"Statement":{"Effect":"Allow","Principal":{"Federated":"cognito-identity.amazonaws.com"},"Action":"sts:AssumeRoleWithWebIdentity"}}"#,
        ),
        (
            "NotPrincipal deny",
            r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"*","Resource":"*"}}"#,
        ),
    ];
    for (name, text) in cases {
        let doc = PolicyDocument::resource(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.text, *text);
        assert!(
            PolicyDocument::identity(text).is_err(),
            "{name}: an identity policy may not name principals"
        );
    }
}

#[test]
fn accessors() {
    let doc = PolicyDocument::identity(READ_ONLY).expect("valid");
    assert_eq!(doc.version(), Some("2012-10-17"));
    assert_eq!(doc.id(), None);
    let sids: Vec<_> = doc.statements().iter().map(Statement::sid).collect();
    assert_eq!(sids, [Some("LambdaRead"), Some("Logs")]);
    assert!(doc.statements().iter().all(|s| s.effect() == Effect::Allow));
}

#[test]
fn principal_arns_lists_users_roles_and_sessions_only() {
    let doc = PolicyDocument::resource(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::1:root","*","arn:aws:iam::111122223333:role/path/R","arn:aws:iam::111122223333:user/alice"],"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:sts::111122223333:assumed-role/R/s"},"Action":"sts:AssumeRole"}]}"#,
    );
    // "arn:aws:iam::1:root" has no 12-digit account: refused.
    assert!(doc.is_err());
    let doc = PolicyDocument::resource(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::111122223333:root","*","arn:aws:iam::111122223333:role/path/R","arn:aws:iam::111122223333:user/alice"],"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:sts::111122223333:assumed-role/R/s"},"Action":"sts:AssumeRole"}]}"#,
    )
    .expect("valid");
    assert_eq!(
        doc.principal_arns(),
        [
            "arn:aws:iam::111122223333:role/path/R",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:sts::111122223333:assumed-role/R/s"
        ]
    );
}

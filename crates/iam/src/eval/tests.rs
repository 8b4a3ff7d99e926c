use super::*;

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:fn";

fn doc(statements: &str) -> PolicyDocument {
    let text = format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#);
    PolicyDocument::identity(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn ask(policies: &[&PolicyDocument], action: &str, resource: &str, ctx: &Context) -> Decision {
    identity(
        policies,
        &Request {
            action,
            resource,
            context: ctx,
        },
    )
}

#[test]
fn actions_resources_and_effects() {
    use Decision::*;
    let allow_get = r#"{"Effect":"Allow","Action":["lambda:Get*","lambda:List*"],"Resource":"*"}"#;
    let qualified = format!("{FN}:prod");
    let deny_fn = format!(r#"{{"Effect":"Deny","Action":"lambda:*","Resource":"{FN}"}}"#);
    let cases: Vec<(&str, String, &str, &str, Decision)> = vec![
        ("allow by wildcard action", allow_get.into(), "lambda:GetFunction", FN, Allow),
        ("action case ignored", allow_get.into(), "LAMBDA:getfunction", FN, Allow),
        ("other action: no match", allow_get.into(), "lambda:DeleteFunction", FN, NoMatch),
        ("other service: no match", allow_get.into(), "logs:GetLogEvents", FN, NoMatch),
        ("deny wins over allow", format!("[{allow_get},{deny_fn}]"), "lambda:GetFunction", FN, Deny),
        ("deny wins, whatever the order", format!("[{deny_fn},{allow_get}]"), "lambda:GetFunction", FN, Deny),
        ("deny elsewhere: allow", format!("[{allow_get},{deny_fn}]"), "lambda:GetFunction", &FN[..FN.len() - 1], Allow),
        ("star action", r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#.into(), "iam:CreateUser", "*", Allow),
        ("service star", r#"{"Effect":"Allow","Action":"lambda:*","Resource":"*"}"#.into(), "lambda:InvokeFunction", FN, Allow),
        ("question mark", r#"{"Effect":"Allow","Action":"lambda:?etFunction","Resource":"*"}"#.into(), "lambda:GetFunction", FN, Allow),
        ("resource wildcard", r#"{"Effect":"Allow","Action":"lambda:*","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f*"}"#.into(), "lambda:InvokeFunction", FN, Allow),
        ("resource wildcard misses", r#"{"Effect":"Allow","Action":"lambda:*","Resource":"arn:aws:lambda:us-east-1:123456789012:function:g*"}"#.into(), "lambda:InvokeFunction", FN, NoMatch),
        ("resource case matters", r#"{"Effect":"Allow","Action":"lambda:*","Resource":"arn:aws:lambda:us-east-1:123456789012:function:FN"}"#.into(), "lambda:InvokeFunction", FN, NoMatch),
        ("qualified ARN is another resource", format!(r#"{{"Effect":"Allow","Action":"lambda:*","Resource":"{FN}"}}"#), "lambda:InvokeFunction", &qualified, NoMatch),
        ("qualifier wildcard", format!(r#"{{"Effect":"Allow","Action":"lambda:*","Resource":"{FN}:*"}}"#), "lambda:InvokeFunction", &qualified, Allow),
        ("NotAction: other actions allowed", r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#.into(), "lambda:DeleteFunction", FN, Allow),
        ("NotAction: listed action not", r#"{"Effect":"Allow","NotAction":["iam:*","lambda:Delete*"],"Resource":"*"}"#.into(), "lambda:deletefunction", FN, NoMatch),
        ("NotAction deny", r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"logs:*","Resource":"*"}]"#.into(), "lambda:GetFunction", FN, Deny),
        ("NotAction deny spares its list", r#"[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"logs:*","Resource":"*"}]"#.into(), "logs:PutLogEvents", "*", Allow),
        ("NotResource: other resources", r#"{"Effect":"Allow","Action":"lambda:*","NotResource":"arn:aws:lambda:*:*:function:secret*"}"#.into(), "lambda:GetFunction", FN, Allow),
        ("NotResource: listed resource not", r#"{"Effect":"Allow","Action":"lambda:*","NotResource":"arn:aws:lambda:*:*:function:f*"}"#.into(), "lambda:GetFunction", FN, NoMatch),
    ];
    let ctx = Context::new();
    for (name, statements, action, resource, want) in cases {
        let d = doc(&statements);
        assert_eq!(ask(&[&d], action, resource, &ctx), want, "{name}");
    }
}

#[test]
fn several_policies_combine() {
    let allow = doc(r#"{"Effect":"Allow","Action":"lambda:*","Resource":"*"}"#);
    let deny = doc(r#"{"Effect":"Deny","Action":"lambda:DeleteFunction","Resource":"*"}"#);
    let other = doc(r#"{"Effect":"Allow","Action":"logs:*","Resource":"*"}"#);
    let ctx = Context::new();
    assert_eq!(ask(&[], "lambda:GetFunction", FN, &ctx), Decision::NoMatch);
    assert_eq!(
        ask(&[&other], "lambda:GetFunction", FN, &ctx),
        Decision::NoMatch
    );
    assert_eq!(
        ask(&[&other, &allow], "lambda:GetFunction", FN, &ctx),
        Decision::Allow
    );
    assert_eq!(
        ask(&[&allow, &other, &deny], "lambda:DeleteFunction", FN, &ctx),
        Decision::Deny
    );
    assert_eq!(
        ask(&[&allow, &other, &deny], "lambda:GetFunction", FN, &ctx),
        Decision::Allow
    );
}

/// One condition block, evaluated against contexts; `want` is whether the statement applies.
#[test]
fn conditions() {
    fn ctx(pairs: &[(&str, &[&str])]) -> Context {
        let mut c = Context::new();
        for (k, vs) in pairs {
            c.set_all(k, vs.iter().copied());
        }
        c
    }
    type Case<'a> = (&'a str, &'a [(&'a str, &'a [&'a str])], bool);
    let table: &[(&str, &[Case])] = &[
        (
            r#"{"StringEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}"#,
            &[
                ("equal", &[("aws:RequestedRegion", &["eu-west-1"])], true),
                (
                    "key case ignored",
                    &[("AWS:REQUESTEDREGION", &["eu-west-1"])],
                    true,
                ),
                (
                    "value case matters",
                    &[("aws:RequestedRegion", &["EU-WEST-1"])],
                    false,
                ),
                (
                    "other value",
                    &[("aws:RequestedRegion", &["ap-south-1"])],
                    false,
                ),
                ("missing key", &[], false),
            ],
        ),
        (
            r#"{"StringNotEquals":{"aws:RequestedRegion":"us-east-1"}}"#,
            &[
                ("equal", &[("aws:RequestedRegion", &["us-east-1"])], false),
                ("other", &[("aws:RequestedRegion", &["eu-west-1"])], true),
                ("missing key: a negated test holds", &[], true),
            ],
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"k:v":"Hello"}}"#,
            &[
                ("any case", &[("k:v", &["hELLO"])], true),
                ("other", &[("k:v", &["help"])], false),
            ],
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"k:v":"Hello"}}"#,
            &[
                ("any case", &[("k:v", &["HELLO"])], false),
                ("other", &[("k:v", &["help"])], true),
            ],
        ),
        (
            r#"{"StringLike":{"k:v":["team-*","x?z"]}}"#,
            &[
                ("star", &[("k:v", &["team-a"])], true),
                ("question", &[("k:v", &["xyz"])], true),
                ("neither", &[("k:v", &["xz"])], false),
            ],
        ),
        (
            r#"{"StringNotLike":{"k:v":"team-*"}}"#,
            &[
                ("like", &[("k:v", &["team-a"])], false),
                ("unlike", &[("k:v", &["ops"])], true),
            ],
        ),
        (
            r#"{"StringEquals":{"k:v":"*"}}"#,
            &[
                (
                    "StringEquals has no wildcards",
                    &[("k:v", &["anything"])],
                    false,
                ),
                ("literal star", &[("k:v", &["*"])], true),
            ],
        ),
        (
            r#"{"StringEquals":{"k:owner":"${aws:username}"}}"#,
            &[
                (
                    "variable equal",
                    &[("k:owner", &["alice"]), ("aws:username", &["alice"])],
                    true,
                ),
                (
                    "variable differs",
                    &[("k:owner", &["alice"]), ("aws:username", &["bob"])],
                    false,
                ),
                ("variable absent", &[("k:owner", &["alice"])], false),
            ],
        ),
        (
            r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::bucket-*"}}"#,
            &[
                (
                    "like",
                    &[("aws:SourceArn", &["arn:aws:s3:::bucket-1"])],
                    true,
                ),
                (
                    "unlike",
                    &[("aws:SourceArn", &["arn:aws:s3:::other"])],
                    false,
                ),
                ("not an ARN", &[("aws:SourceArn", &["bucket-1"])], false),
            ],
        ),
        (
            r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:lambda:*:123456789012:function:*"}}"#,
            &[
                (
                    "parts matched separately",
                    &[(
                        "aws:SourceArn",
                        &["arn:aws:lambda:us-east-1:123456789012:function:f"],
                    )],
                    true,
                ),
                (
                    "star stays in its part",
                    &[(
                        "aws:SourceArn",
                        &["arn:aws:lambda:us-east-1:x:123456789012:function:f"],
                    )],
                    false,
                ),
                (
                    "other account",
                    &[(
                        "aws:SourceArn",
                        &["arn:aws:lambda:us-east-1:999999999999:function:f"],
                    )],
                    false,
                ),
            ],
        ),
        (
            r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:s3:::bucket-*"}}"#,
            &[
                (
                    "like",
                    &[("aws:SourceArn", &["arn:aws:s3:::bucket-1"])],
                    false,
                ),
                (
                    "unlike",
                    &[("aws:SourceArn", &["arn:aws:s3:::other"])],
                    true,
                ),
                ("missing", &[], true),
            ],
        ),
        (
            r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:s3:::b"}}"#,
            &[
                ("equal", &[("aws:SourceArn", &["arn:aws:s3:::b"])], false),
                ("other", &[("aws:SourceArn", &["arn:aws:s3:::c"])], true),
            ],
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":true}}"#,
            &[
                ("true", &[("aws:SecureTransport", &["true"])], true),
                ("TRUE", &[("aws:SecureTransport", &["TRUE"])], true),
                ("false", &[("aws:SecureTransport", &["false"])], false),
                ("garbage", &[("aws:SecureTransport", &["yes"])], false),
                ("missing", &[], false),
            ],
        ),
        (
            r#"{"NumericLessThan":{"k:n":10}}"#,
            &[
                ("less", &[("k:n", &["9"])], true),
                ("fraction", &[("k:n", &["9.5"])], true),
                ("equal", &[("k:n", &["10"])], false),
                ("not a number", &[("k:n", &["ten"])], false),
            ],
        ),
        (
            r#"{"NumericLessThanEquals":{"k:n":"10"}}"#,
            &[
                ("equal", &[("k:n", &["10"])], true),
                ("more", &[("k:n", &["11"])], false),
            ],
        ),
        (
            r#"{"NumericGreaterThan":{"k:n":"10"}}"#,
            &[
                ("more", &[("k:n", &["11"])], true),
                ("equal", &[("k:n", &["10"])], false),
            ],
        ),
        (
            r#"{"NumericGreaterThanEquals":{"k:n":"10"}}"#,
            &[
                ("equal", &[("k:n", &["10"])], true),
                ("less", &[("k:n", &["9"])], false),
            ],
        ),
        (
            r#"{"NumericEquals":{"k:n":["1","2"]}}"#,
            &[
                ("one of", &[("k:n", &["2.0"])], true),
                ("neither", &[("k:n", &["3"])], false),
            ],
        ),
        (
            r#"{"NumericNotEquals":{"k:n":["1","2"]}}"#,
            &[
                ("one of", &[("k:n", &["2"])], false),
                ("neither", &[("k:n", &["3"])], true),
            ],
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2026-12-06T10:00:00Z"}}"#,
            &[
                (
                    "before",
                    &[("aws:CurrentTime", &["2026-12-06T09:59:59Z"])],
                    true,
                ),
                (
                    "at",
                    &[("aws:CurrentTime", &["2026-12-06T10:00:00Z"])],
                    false,
                ),
                (
                    "after",
                    &[("aws:CurrentTime", &["2027-01-01T00:00:00Z"])],
                    false,
                ),
                (
                    "epoch seconds before",
                    &[("aws:CurrentTime", &["1796551199"])],
                    true,
                ),
                ("missing", &[], false),
            ],
        ),
        (
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"1796551200"}}"#,
            &[
                (
                    "at, ISO against epoch",
                    &[("aws:CurrentTime", &["2026-12-06T10:00:00Z"])],
                    true,
                ),
                (
                    "after",
                    &[("aws:CurrentTime", &["2026-12-06T10:00:01Z"])],
                    false,
                ),
            ],
        ),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-12-06T10:00:00Z"}}"#,
            &[
                (
                    "after",
                    &[("aws:CurrentTime", &["2026-12-06T10:00:01Z"])],
                    true,
                ),
                (
                    "before",
                    &[("aws:CurrentTime", &["2026-12-06T09:00:00Z"])],
                    false,
                ),
            ],
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-12-06T10:00:00Z"}}"#,
            &[
                (
                    "at, other offset",
                    &[("aws:CurrentTime", &["2026-12-06T11:00:00+01:00"])],
                    true,
                ),
                (
                    "before",
                    &[("aws:CurrentTime", &["2026-12-06T09:00:00Z"])],
                    false,
                ),
            ],
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2026-12-06"}}"#,
            &[
                (
                    "midnight",
                    &[("aws:CurrentTime", &["2026-12-06T00:00:00Z"])],
                    true,
                ),
                (
                    "later",
                    &[("aws:CurrentTime", &["2026-12-06T00:00:01Z"])],
                    false,
                ),
            ],
        ),
        (
            r#"{"DateNotEquals":{"aws:CurrentTime":"2026-12-06"}}"#,
            &[
                (
                    "midnight",
                    &[("aws:CurrentTime", &["2026-12-06T00:00:00Z"])],
                    false,
                ),
                (
                    "later",
                    &[("aws:CurrentTime", &["2026-12-06T00:00:01Z"])],
                    true,
                ),
            ],
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:db8::/32"]}}"#,
            &[
                ("v4 inside", &[("aws:SourceIp", &["203.0.113.9"])], true),
                ("v4 outside", &[("aws:SourceIp", &["198.51.100.1"])], false),
                ("v6 inside", &[("aws:SourceIp", &["2001:db8::7"])], true),
                ("not an address", &[("aws:SourceIp", &["localhost"])], false),
                ("missing", &[], false),
            ],
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &[
                ("inside", &[("aws:SourceIp", &["10.1.2.3"])], false),
                ("outside", &[("aws:SourceIp", &["11.1.2.3"])], true),
            ],
        ),
        (
            r#"{"StringEqualsIfExists":{"k:v":"a"}}"#,
            &[
                ("present, equal", &[("k:v", &["a"])], true),
                ("present, other", &[("k:v", &["b"])], false),
                ("absent", &[], true),
            ],
        ),
        (
            r#"{"NumericLessThanIfExists":{"k:n":"5"}}"#,
            &[
                ("present, more", &[("k:n", &["6"])], false),
                ("absent", &[], true),
            ],
        ),
        (
            r#"{"Null":{"aws:TokenIssueTime":"true"}}"#,
            &[
                ("absent", &[], true),
                (
                    "present",
                    &[("aws:TokenIssueTime", &["2026-01-01T00:00:00Z"])],
                    false,
                ),
            ],
        ),
        (
            r#"{"Null":{"aws:TokenIssueTime":"false"}}"#,
            &[
                ("absent", &[], false),
                ("present", &[("aws:TokenIssueTime", &["x"])], true),
            ],
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            &[
                ("one in", &[("aws:TagKeys", &["cost", "team"])], true),
                ("none in", &[("aws:TagKeys", &["cost", "owner"])], false),
                ("absent", &[], false),
                ("empty", &[("aws:TagKeys", &[])], false),
            ],
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            &[
                ("all in", &[("aws:TagKeys", &["env", "team"])], true),
                ("one out", &[("aws:TagKeys", &["env", "cost"])], false),
                ("absent: the empty set", &[], true),
            ],
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"env"}}"#,
            &[
                ("one other", &[("aws:TagKeys", &["env", "cost"])], true),
                ("only env", &[("aws:TagKeys", &["env"])], false),
            ],
        ),
        (
            r#"{"ForAllValues:StringLike":{"aws:TagKeys":"team-*"}}"#,
            &[
                ("all like", &[("aws:TagKeys", &["team-a", "team-b"])], true),
                ("one unlike", &[("aws:TagKeys", &["team-a", "env"])], false),
            ],
        ),
        (
            r#"{"StringEquals":{"k:a":"1","k:b":"2"},"Bool":{"k:c":"true"}}"#,
            &[
                (
                    "all hold",
                    &[("k:a", &["1"]), ("k:b", &["2"]), ("k:c", &["true"])],
                    true,
                ),
                (
                    "one key fails",
                    &[("k:a", &["1"]), ("k:b", &["3"]), ("k:c", &["true"])],
                    false,
                ),
                (
                    "one operator fails",
                    &[("k:a", &["1"]), ("k:b", &["2"]), ("k:c", &["false"])],
                    false,
                ),
            ],
        ),
    ];
    for (block, cases) in table {
        let d = doc(&format!(
            r#"{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{block}}}"#
        ));
        for (name, pairs, want) in *cases {
            let c = ctx(pairs);
            let got = ask(&[&d], "s3:GetObject", "*", &c) == Decision::Allow;
            assert_eq!(got, *want, "{block}: {name}");
        }
    }
}

#[test]
fn policy_variables_in_resources() {
    let d = doc(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::home/${aws:username}/*","arn:aws:s3:::acct/${aws:PrincipalAccount}/${aws:userid}"]}"#,
    );
    let mut ctx = Context::new();
    ctx.set("aws:username", "alice")
        .set("aws:userid", "AIDAEXAMPLE")
        .set("aws:PrincipalAccount", "123456789012");
    let cases = [
        ("arn:aws:s3:::home/alice/notes", Decision::Allow),
        ("arn:aws:s3:::home/bob/notes", Decision::NoMatch),
        (
            "arn:aws:s3:::acct/123456789012/AIDAEXAMPLE",
            Decision::Allow,
        ),
        ("arn:aws:s3:::acct/123456789012/other", Decision::NoMatch),
    ];
    for (resource, want) in cases {
        assert_eq!(
            ask(&[&d], "s3:GetObject", resource, &ctx),
            want,
            "{resource}"
        );
    }
    // Without the variable's value the statement applies to nothing.
    assert_eq!(
        ask(
            &[&d],
            "s3:GetObject",
            "arn:aws:s3:::home//notes",
            &Context::new()
        ),
        Decision::NoMatch
    );
    // Version 2008-10-17 has no variables: the text is literal.
    let old = PolicyDocument::identity(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}"}}"#,
    )
    .expect("valid");
    assert_eq!(
        ask(&[&old], "s3:GetObject", "arn:aws:s3:::home/alice", &ctx),
        Decision::NoMatch
    );
    assert_eq!(
        ask(
            &[&old],
            "s3:GetObject",
            "arn:aws:s3:::home/${aws:username}",
            &ctx
        ),
        Decision::Allow
    );
}

#[test]
fn principals_in_resource_policies() {
    let user = Principal::Aws {
        arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
    };
    let other_user = Principal::Aws {
        arn: "arn:aws:iam::123456789012:user/bob",
        account: "123456789012",
    };
    let foreign = Principal::Aws {
        arn: "arn:aws:iam::999999999999:user/mallory",
        account: "999999999999",
    };
    let role = Principal::Aws {
        arn: "arn:aws:iam::123456789012:role/ops/deployer",
        account: "123456789012",
    };
    let session = Principal::Aws {
        arn: "arn:aws:sts::123456789012:assumed-role/deployer/ci-42",
        account: "123456789012",
    };
    let other_session = Principal::Aws {
        arn: "arn:aws:sts::123456789012:assumed-role/deployer2/ci-42",
        account: "123456789012",
    };
    let s3 = Principal::Service("s3.amazonaws.com");
    let lambda = Principal::Service("lambda.amazonaws.com");

    type Case<'a> = (&'a str, &'a str, &'a [(Principal<'a>, Decision)]);
    use Decision::*;
    let table: &[Case] = &[
        (
            "everyone",
            r#""*""#,
            &[(user, Allow), (foreign, Allow), (s3, Allow)],
        ),
        (
            "any AWS principal",
            r#"{"AWS":"*"}"#,
            &[(user, Allow), (foreign, Allow), (s3, NoMatch)],
        ),
        (
            "account id",
            r#"{"AWS":"123456789012"}"#,
            &[
                (user, Allow),
                (role, Allow),
                (session, Allow),
                (foreign, NoMatch),
                (s3, NoMatch),
            ],
        ),
        (
            "root ARN",
            r#"{"AWS":"arn:aws:iam::123456789012:root"}"#,
            &[(user, Allow), (session, Allow), (foreign, NoMatch)],
        ),
        (
            "user ARN exactly",
            r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#,
            &[(user, Allow), (other_user, NoMatch), (role, NoMatch)],
        ),
        (
            "role ARN and its sessions",
            r#"{"AWS":"arn:aws:iam::123456789012:role/ops/deployer"}"#,
            &[
                (role, Allow),
                (session, Allow),
                (other_session, NoMatch),
                (user, NoMatch),
            ],
        ),
        (
            "session ARN exactly",
            r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/deployer/ci-42"}"#,
            &[(session, Allow), (role, NoMatch)],
        ),
        (
            "service",
            r#"{"Service":"s3.amazonaws.com"}"#,
            &[(s3, Allow), (lambda, NoMatch), (user, NoMatch)],
        ),
        (
            "services list",
            r#"{"Service":["s3.amazonaws.com","lambda.amazonaws.com"]}"#,
            &[(s3, Allow), (lambda, Allow)],
        ),
        (
            "mixed",
            r#"{"AWS":["999999999999"],"Service":"lambda.amazonaws.com"}"#,
            &[
                (foreign, Allow),
                (lambda, Allow),
                (user, NoMatch),
                (s3, NoMatch),
            ],
        ),
    ];
    let ctx = Context::new();
    let req = Request {
        action: "lambda:InvokeFunction",
        resource: FN,
        context: &ctx,
    };
    for (name, principal, cases) in table {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{principal},"Action":"lambda:InvokeFunction","Resource":"{FN}"}}}}"#
        );
        let policy = PolicyDocument::resource(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (who, want) in *cases {
            assert_eq!(resource(&policy, *who, &req), *want, "{name}: {who:?}");
        }
    }
}

#[test]
fn resource_policies_deny_and_conditions() {
    let policy = PolicyDocument::resource(&format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Sid":"s3","Effect":"Allow","Principal":{{"Service":"s3.amazonaws.com"}},"Action":"lambda:InvokeFunction","Resource":"{FN}",
              "Condition":{{"StringEquals":{{"AWS:SourceAccount":"123456789012"}},"ArnLike":{{"AWS:SourceArn":"arn:aws:s3:::uploads"}}}}}},
            {{"Effect":"Deny","NotPrincipal":{{"AWS":"123456789012","Service":"s3.amazonaws.com"}},"Action":"*","Resource":"*"}}]}}"#
    ))
    .expect("valid");
    let s3 = Principal::Service("s3.amazonaws.com");
    let mut good = Context::new();
    good.set("aws:SourceAccount", "123456789012")
        .set("aws:SourceArn", "arn:aws:s3:::uploads");
    let empty = Context::new();
    let mut wrong_bucket = good.clone();
    wrong_bucket.set("aws:SourceArn", "arn:aws:s3:::other");
    let req = |ctx| Request {
        action: "lambda:InvokeFunction",
        resource: FN,
        context: ctx,
    };
    assert_eq!(resource(&policy, s3, &req(&good)), Decision::Allow);
    assert_eq!(
        resource(&policy, s3, &req(&wrong_bucket)),
        Decision::NoMatch
    );
    assert_eq!(resource(&policy, s3, &req(&empty)), Decision::NoMatch);
    let foreign = Principal::Aws {
        arn: "arn:aws:iam::999999999999:root",
        account: "999999999999",
    };
    assert_eq!(resource(&policy, foreign, &req(&good)), Decision::Deny);
    let local = Principal::Aws {
        arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
    };
    assert_eq!(resource(&policy, local, &req(&good)), Decision::NoMatch);
}

#[test]
fn trust_policy_without_resource_applies_to_its_role() {
    let trust = PolicyDocument::resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    )
    .expect("valid");
    let ctx = Context::new();
    let req = Request {
        action: "sts:AssumeRole",
        resource: "arn:aws:iam::123456789012:role/exec",
        context: &ctx,
    };
    assert_eq!(
        resource(&trust, Principal::Service("lambda.amazonaws.com"), &req),
        Decision::Allow
    );
    assert_eq!(
        resource(&trust, Principal::Service("s3.amazonaws.com"), &req),
        Decision::NoMatch
    );
    let other = Request {
        action: "sts:TagSession",
        ..req
    };
    assert_eq!(
        resource(&trust, Principal::Service("lambda.amazonaws.com"), &other),
        Decision::NoMatch
    );
}

#[test]
fn context_keys_are_case_insensitive() {
    let mut ctx = Context::new();
    ctx.set("AWS:SourceIp", "10.0.0.1");
    assert_eq!(ctx.get("aws:sourceip"), Some(&["10.0.0.1".to_owned()][..]));
    assert_eq!(ctx.get("aws:SourceIP"), ctx.get("aws:sourceip"));
    assert_eq!(ctx.get("aws:other"), None);
    ctx.set_all("aws:TagKeys", ["a", "b"]);
    assert_eq!(ctx.get("AWS:TAGKEYS").map(<[String]>::len), Some(2));
}

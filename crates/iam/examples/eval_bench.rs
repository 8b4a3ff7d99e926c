//! The policy evaluator's cost per request, for a typical principal: three identity
//! policies (ten statements: wildcards, a NotAction deny, a condition), evaluated a million
//! times for a request that must walk them all and one that an early statement allows.
//!
//! Run: `cargo run --release -p stratus-iam --example eval_bench`.

use std::hint::black_box;
use std::time::Instant;

use stratus_iam::eval::{self, Context, Decision, Principal, Request};
use stratus_iam::policy::PolicyDocument;

const BASIC_EXECUTION: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"},
  {"Effect":"Allow","Action":"lambda:GetLayerVersion","Resource":"arn:aws:lambda:*:123456789012:layer:*:*"}]}"#;

const DEVELOPER: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Read","Effect":"Allow","Action":["lambda:Get*","lambda:List*"],"Resource":"*"},
  {"Sid":"OwnFunctions","Effect":"Allow","Action":["lambda:UpdateFunctionCode","lambda:UpdateFunctionConfiguration","lambda:InvokeFunction"],
   "Resource":"arn:aws:lambda:us-east-1:123456789012:function:team-a-*"},
  {"Sid":"Home","Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"},
  {"Sid":"Logs","Effect":"Allow","Action":["logs:Describe*","logs:Get*","logs:FilterLogEvents"],"Resource":"arn:aws:logs:*:*:log-group:/aws/lambda/team-a-*"},
  {"Sid":"Office","Effect":"Allow","Action":"lambda:DeleteFunction","Resource":"arn:aws:lambda:*:*:function:team-a-*",
   "Condition":{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","198.51.100.0/24"]},"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}]}"#;

const GUARDRAILS: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"NoIam","Effect":"Deny","Action":"iam:*","Resource":"*"},
  {"Sid":"Regions","Effect":"Deny","NotAction":["iam:*","sts:*"],"Resource":"*",
   "Condition":{"StringNotEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]}}},
  {"Sid":"Prod","Effect":"Deny","Action":"lambda:Delete*","Resource":"arn:aws:lambda:*:*:function:*-prod"}]}"#;

const FUNCTION_POLICY: &str = r#"{"Version":"2012-10-17","Id":"default","Statement":[
  {"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction",
   "Resource":"arn:aws:lambda:us-east-1:123456789012:function:team-a-thumbs",
   "Condition":{"StringEquals":{"AWS:SourceAccount":"123456789012"},"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::uploads-*"}}},
  {"Sid":"ops","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/ops"},"Action":"lambda:*",
   "Resource":"arn:aws:lambda:us-east-1:123456789012:function:team-a-thumbs"}]}"#;

const N: u32 = 1_000_000;

fn time(name: &str, mut f: impl FnMut() -> Decision, want: Decision) {
    assert_eq!(f(), want, "{name}");
    // Warm up, then measure.
    for _ in 0..N / 10 {
        black_box(f());
    }
    let start = Instant::now();
    for _ in 0..N {
        black_box(f());
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(N);
    println!("{name:<58} {ns:>8.0} ns/evaluation ({want:?})");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let docs = [
        PolicyDocument::identity(BASIC_EXECUTION)?,
        PolicyDocument::identity(DEVELOPER)?,
        PolicyDocument::identity(GUARDRAILS)?,
    ];
    let function_policy = PolicyDocument::resource(FUNCTION_POLICY)?;
    println!("parsing 4 documents: {:?}", start.elapsed());
    let policies: Vec<&PolicyDocument> = docs.iter().collect();
    let statements: usize = docs.iter().map(|d| d.statements().len()).sum();
    println!(
        "{} identity policies, {statements} statements, {N} evaluations each",
        docs.len()
    );

    let mut ctx = Context::new();
    ctx.set("aws:username", "alice")
        .set("aws:userid", "AIDAEXAMPLE")
        .set("aws:PrincipalAccount", "123456789012")
        .set("aws:SourceIp", "203.0.113.7")
        .set("aws:CurrentTime", "2026-06-01T12:00:00Z")
        .set("aws:RequestedRegion", "us-east-1")
        .set("aws:PrincipalArn", "arn:aws:iam::123456789012:user/alice")
        .set("aws:SecureTransport", "true");
    let function = "arn:aws:lambda:us-east-1:123456789012:function:team-a-thumbs";

    let req = |action, resource| Request {
        action,
        resource,
        context: &ctx,
    };
    time(
        "identity: GetFunction (allowed by a wildcard)",
        || eval::identity(&policies, &req("lambda:GetFunction", function)),
        Decision::Allow,
    );
    time(
        "identity: DeleteFunction (allowed under IP+date condition)",
        || eval::identity(&policies, &req("lambda:DeleteFunction", function)),
        Decision::Allow,
    );
    time(
        "identity: PutObject in own home (policy variable)",
        || {
            eval::identity(
                &policies,
                &req("s3:PutObject", "arn:aws:s3:::home/alice/a.txt"),
            )
        },
        Decision::Allow,
    );
    time(
        "identity: CreateFunction (no statement: walks all)",
        || eval::identity(&policies, &req("lambda:CreateFunction", function)),
        Decision::NoMatch,
    );
    time(
        "identity: iam:CreateUser (explicit deny)",
        || eval::identity(&policies, &req("iam:CreateUser", "*")),
        Decision::Deny,
    );
    let mut s3_ctx = Context::new();
    s3_ctx
        .set("aws:SourceAccount", "123456789012")
        .set("aws:SourceArn", "arn:aws:s3:::uploads-eu");
    let s3_req = Request {
        action: "lambda:InvokeFunction",
        resource: function,
        context: &s3_ctx,
    };
    time(
        "resource: s3.amazonaws.com invokes (conditions)",
        || {
            eval::resource(
                &function_policy,
                Principal::Service("s3.amazonaws.com"),
                &s3_req,
            )
        },
        Decision::Allow,
    );
    let session = Principal::Aws {
        arn: "arn:aws:sts::123456789012:assumed-role/ops/pager",
        account: "123456789012",
    };
    time(
        "resource: a session of role ops invokes",
        || eval::resource(&function_policy, session, &s3_req),
        Decision::Allow,
    );
    Ok(())
}

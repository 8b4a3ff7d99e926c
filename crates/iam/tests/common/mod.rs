//! A service over a fresh store, and a clock the test moves.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use stratus_aws::Scope;
use stratus_iam::IamService;
use stratus_store::Store;

pub const ACCOUNT: &str = "123456789012";
pub const START_MS: i64 = 1_704_164_645_000;

pub struct Fixture {
    pub iam: IamService,
    pub store: Store,
    pub clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn advance_secs(&self, secs: i64) {
        self.clock.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    /// Another service over the same store: what a restarted server sees.
    pub fn reopened(&self) -> IamService {
        let clock = self.clock.clone();
        IamService::with_clock(
            self.store.clone(),
            scope(),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        )
    }
}

pub fn scope() -> Scope {
    Scope {
        region: "us-east-1".into(),
        account_id: ACCOUNT.into(),
    }
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap().namespace("iam");
    let clock = Arc::new(AtomicI64::new(START_MS));
    let c = clock.clone();
    let iam = IamService::with_clock(
        store.clone(),
        scope(),
        Arc::new(move || c.load(Ordering::SeqCst)),
    );
    Fixture {
        iam,
        store,
        clock,
        _dir: dir,
    }
}

pub fn allow(action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
    )
}

pub fn trust(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"sts:AssumeRole"}}]}}"#
    )
}

/// Whether the policy language's evaluator is in (it was a stub answering `NoMatch` while
/// it was written in parallel): tests of what it allows need it.
pub fn evaluator_ready() -> bool {
    use stratus_iam::eval::{Context, Decision, Request, identity};
    use stratus_iam::policy::PolicyDocument;
    let doc = PolicyDocument::identity(&allow("s3:GetObject")).unwrap();
    let ctx = Context::new();
    let req = Request {
        action: "s3:GetObject",
        resource: "*",
        context: &ctx,
    };
    identity(&[&doc], &req) == Decision::Allow
}

//! A service over a temporary directory, for the crate's unit tests.

#![allow(clippy::unwrap_used)]

use stratus_store::{Expect, Op, Store};

use crate::model::FunctionRecord;
use crate::records::{FUNCTIONS, blobs_of, decode, encode};
use crate::{
    CreateFunction, DEFAULT_CONCURRENT_EXECUTIONS, FunctionConfig, FunctionService, FunctionState,
    RuntimeCatalog, RuntimeInfo, RuntimeKind, Scope, ServiceOptions,
};

/// A service in `dir` offering only `provided.al2`.
pub fn open(dir: &std::path::Path) -> FunctionService {
    let catalog = RuntimeCatalog::from_runtimes(vec![RuntimeInfo {
        id: "provided.al2".into(),
        kind: RuntimeKind::Provided,
        interpreter: None,
    }]);
    let opts = ServiceOptions {
        scope: Scope {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        },
        code_dir: dir.join("code"),
        concurrent_executions: DEFAULT_CONCURRENT_EXECUTIONS,
    };
    FunctionService::new(Store::open(&dir.join("state")).unwrap(), opts, catalog).unwrap()
}

/// Creates function `name` (a `bootstrap` only) and waits until it is Active.
pub fn create_active(svc: &FunctionService, name: &str) {
    svc.create(CreateFunction {
        name: name.into(),
        runtime: Some("provided.al2".into()),
        role: "arn:aws:iam::000000000000:role/r".into(),
        handler: Some("bootstrap".into()),
        zip_file: Some(crate::code::tests::zip_of(&[("bootstrap", b"x")])),
        ..CreateFunction::default()
    })
    .unwrap();
    wait_for(svc, name, FunctionState::Active);
}

/// Changes function `name`'s `$LATEST` straight in the store, behind the service's
/// back (no preparation worker runs for it).
pub fn edit_latest(store: &Store, name: &str, f: impl FnOnce(&mut FunctionConfig)) {
    let doc = store.meta.get(FUNCTIONS, name).unwrap().unwrap();
    let mut rec: FunctionRecord = decode(&doc.value).unwrap();
    f(&mut rec.latest);
    store
        .meta
        .commit(&[Op::put_with_blobs(
            FUNCTIONS,
            name,
            encode(&rec).unwrap(),
            blobs_of(&rec.latest).unwrap(),
            Expect::Version(doc.version),
        )])
        .unwrap();
}

pub fn wait_for(svc: &FunctionService, name: &str, want: FunctionState) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while svc.get(name, None).unwrap().config.state != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never became {want:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

//! What the function service's integration tests share.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use stratus_lambda::{
    FunctionService, RuntimeCatalog, RuntimeInfo, RuntimeKind, Scope, ServiceOptions,
};
use stratus_store::Store;

/// A zip holding `files`.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A service over `dir` offering only `provided.al2023`.
pub fn service(dir: &std::path::Path) -> FunctionService {
    let store = Store::open(&dir.join("state")).unwrap();
    let catalog = RuntimeCatalog::from_runtimes(vec![RuntimeInfo {
        id: "provided.al2023".into(),
        kind: RuntimeKind::Provided,
        interpreter: None,
    }]);
    FunctionService::new(
        store,
        ServiceOptions {
            scope: Scope {
                region: "us-east-1".into(),
                account_id: "000000000000".into(),
            },
            code_dir: dir.join("code"),
            concurrent_executions: 1000,
        },
        catalog,
    )
    .unwrap()
}

/// Polls `cond` until it holds, for at most 10 s.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

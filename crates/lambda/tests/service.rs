//! The function service against a real store in a temporary directory.
#![allow(clippy::unwrap_used)]

use stratus_lambda::{
    CreateFunction, FunctionState, LambdaError, LastUpdateStatus, UpdateCode, UpdateConfig,
};

mod common;
use common::{service, wait_until, zip_of};

fn create_input(name: &str, zip: Vec<u8>) -> CreateFunction {
    CreateFunction {
        name: name.into(),
        runtime: Some("provided.al2023".into()),
        role: "arn:aws:iam::000000000000:role/r".into(),
        handler: Some("bootstrap".into()),
        zip_file: Some(zip),
        ..CreateFunction::default()
    }
}

#[test]
fn create_goes_pending_then_active_with_code_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let created = svc
        .create(create_input("f", zip_of(&[("bootstrap", b"#!/bin/sh\n")])))
        .unwrap();
    assert_eq!(created.config.state, FunctionState::Pending);
    assert_eq!(
        created.arn,
        "arn:aws:lambda:us-east-1:000000000000:function:f"
    );
    wait_until("Active", || {
        svc.get("f", None).unwrap().config.state == FunctionState::Active
    });
    let view = svc.get("f", None).unwrap();
    assert_ne!(view.config.revision_id, created.config.revision_id);
    assert!(svc.code_path(&view.config).join("bootstrap").is_file());
}

#[test]
fn code_update_publish_and_delete_leave_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let mut input = create_input("g", zip_of(&[("bootstrap", b"v1")]));
    input.publish = true;
    let v1 = svc.create(input).unwrap();
    assert_eq!(v1.config.version, "1");
    wait_until("Active", || {
        svc.get("g", None).unwrap().config.state == FunctionState::Active
    });
    let updated = svc
        .update_code(
            "g",
            UpdateCode {
                zip_file: Some(zip_of(&[("bootstrap", b"v2")])),
                ..UpdateCode::default()
            },
        )
        .unwrap();
    assert_eq!(
        updated.config.last_update_status,
        Some(LastUpdateStatus::InProgress)
    );
    wait_until("Successful", || {
        svc.get("g", None).unwrap().config.last_update_status == Some(LastUpdateStatus::Successful)
    });
    // Version 1 still has the old code; $LATEST the new.
    let old = svc.get("g", Some("1")).unwrap();
    assert_ne!(old.config.code_sha256, updated.config.code_sha256);
    assert_eq!(
        svc.code_zip(&old.config).unwrap(),
        zip_of(&[("bootstrap", b"v1")])
    );

    let blobs = || {
        std::fs::read_dir(dir.path().join("state/blobs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().len() == 2)
            .map(|e| std::fs::read_dir(e.path()).unwrap().count())
            .sum::<usize>()
    };
    assert_eq!(blobs(), 2);
    svc.delete("g", Some("1")).unwrap();
    assert_eq!(blobs(), 1);
    svc.delete("g", None).unwrap();
    assert_eq!(blobs(), 0);
    assert!(matches!(svc.get("g", None), Err(LambdaError::NotFound(_))));
}

#[test]
fn stale_revision_is_a_failed_precondition_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    svc.create(create_input("h", zip_of(&[("bootstrap", b"x")])))
        .unwrap();
    // Updating while Pending is refused, as on AWS; wait for Active first.
    wait_until("Active", || {
        svc.get("h", None).unwrap().config.state == FunctionState::Active
    });
    let rev = svc.get("h", None).unwrap().config.revision_id;
    svc.update_config(
        "h",
        UpdateConfig {
            memory_size: Some(256),
            revision_id: Some(rev.clone()),
            ..UpdateConfig::default()
        },
    )
    .unwrap();
    let stale = svc.update_config(
        "h",
        UpdateConfig {
            memory_size: Some(512),
            revision_id: Some(rev),
            ..UpdateConfig::default()
        },
    );
    assert!(matches!(stale, Err(LambdaError::PreconditionFailed(_))));
    assert_eq!(svc.get("h", None).unwrap().config.memory_size, 256);
    assert!(matches!(
        svc.create(create_input("h", zip_of(&[("bootstrap", b"y")]))),
        Err(LambdaError::Conflict(_))
    ));
}

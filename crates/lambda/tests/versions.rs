//! Versions and aliases against a real store in a temporary directory.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use stratus_lambda::{
    CreateAlias, CreateFunction, FunctionService, FunctionState, LambdaError, LastUpdateStatus,
    PublishVersion, UpdateAlias, UpdateCode, UpdateConfig,
};

mod common;
use common::{service, wait_until, zip_of};

const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function";

fn code(seed: &str) -> Vec<u8> {
    zip_of(&[("bootstrap", format!("#!/bin/sh\n# {seed}\n").as_bytes())])
}

fn wait_ready(svc: &FunctionService, name: &str) {
    wait_until("function ready", || {
        let c = svc.get(name, None).unwrap().config;
        c.state == FunctionState::Active
            && c.last_update_status != Some(LastUpdateStatus::InProgress)
    });
}

/// An Active function `name` with code `seed`.
fn function(svc: &FunctionService, name: &str, seed: &str) {
    svc.create(CreateFunction {
        name: name.into(),
        runtime: Some("provided.al2023".into()),
        role: "arn:aws:iam::000000000000:role/r".into(),
        handler: Some("bootstrap".into()),
        zip_file: Some(code(seed)),
        ..CreateFunction::default()
    })
    .unwrap();
    wait_ready(svc, name);
}

fn publish(svc: &FunctionService, name: &str) -> String {
    svc.publish_version(name, PublishVersion::default())
        .unwrap()
        .config
        .version
}

fn set_memory(svc: &FunctionService, name: &str, mb: i64) {
    svc.update_config(
        name,
        UpdateConfig {
            memory_size: Some(mb),
            ..UpdateConfig::default()
        },
    )
    .unwrap();
    wait_ready(svc, name);
}

fn set_code(svc: &FunctionService, name: &str, seed: &str) {
    svc.update_code(
        name,
        UpdateCode {
            zip_file: Some(code(seed)),
            ..UpdateCode::default()
        },
    )
    .unwrap();
    wait_ready(svc, name);
}

fn alias(svc: &FunctionService, f: &str, name: &str, version: &str) -> stratus_lambda::AliasView {
    svc.create_alias(
        f,
        CreateAlias {
            name: name.into(),
            function_version: version.into(),
            ..CreateAlias::default()
        },
    )
    .unwrap()
}

fn weighted(extra: &str, weight: f64) -> Option<BTreeMap<String, f64>> {
    Some(BTreeMap::from([(extra.to_owned(), weight)]))
}

fn listed_versions(svc: &FunctionService, name: &str) -> Vec<String> {
    svc.list_versions(name, None, None)
        .unwrap()
        .versions
        .into_iter()
        .map(|v| v.config.version)
        .collect()
}

fn message(e: LambdaError) -> String {
    e.to_string()
}

// ---- PublishVersion ------------------------------------------------------------------------

#[test]
fn versions_are_numbered_from_one_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    let v1 = svc.publish_version("f", PublishVersion::default()).unwrap();
    assert_eq!(v1.config.version, "1");
    assert_eq!(v1.arn, format!("{ARN}:f:1"));
    assert_eq!(v1.config.state, FunctionState::Active);

    set_memory(&svc, "f", 256);
    assert_eq!(publish(&svc, "f"), "2");
    // Deleting the highest version does not free its number.
    svc.delete("f", Some("2")).unwrap();
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST", "1"]);
    // $LATEST is unchanged since version 2, but version 2 is gone: a new one is published.
    assert_eq!(publish(&svc, "f"), "3");
    set_code(&svc, "f", "b");
    assert_eq!(publish(&svc, "f"), "4");
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST", "1", "3", "4"]);

    // Versions are snapshots: $LATEST moving on does not change them.
    set_memory(&svc, "f", 512);
    assert_eq!(svc.get("f", Some("1")).unwrap().config.memory_size, 128);
    assert_eq!(svc.get("f", Some("3")).unwrap().config.memory_size, 256);
    assert_ne!(
        svc.get("f", Some("3")).unwrap().config.code_sha256,
        svc.get("f", Some("4")).unwrap().config.code_sha256
    );
}

#[test]
fn publishing_an_unchanged_latest_returns_the_last_version() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    let first = svc
        .publish_version(
            "f",
            PublishVersion {
                description: Some("release 1".into()),
                ..PublishVersion::default()
            },
        )
        .unwrap();
    assert_eq!(first.config.description, "release 1");
    assert_eq!(svc.get("f", None).unwrap().config.description, "");
    // Same code and configuration: the existing version comes back, whatever the description.
    let again = svc
        .publish_version(
            "f",
            PublishVersion {
                description: Some("something else".into()),
                ..PublishVersion::default()
            },
        )
        .unwrap();
    assert_eq!(again.config.version, "1");
    assert_eq!(again.config.revision_id, first.config.revision_id);
    assert_eq!(again.config.description, "release 1");
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST", "1"]);

    // A configuration change of $LATEST's own description is a change.
    svc.update_config(
        "f",
        UpdateConfig {
            description: Some("new".into()),
            ..UpdateConfig::default()
        },
    )
    .unwrap();
    wait_ready(&svc, "f");
    assert_eq!(publish(&svc, "f"), "2");
    assert_eq!(publish(&svc, "f"), "2");
}

#[test]
fn publish_on_code_update_counts_as_the_last_version() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    let published = svc
        .update_code(
            "f",
            UpdateCode {
                zip_file: Some(code("b")),
                publish: true,
                ..UpdateCode::default()
            },
        )
        .unwrap();
    assert_eq!(published.config.version, "1");
    wait_ready(&svc, "f");
    // $LATEST went InProgress → Successful since, which is not a change of code or config.
    assert_eq!(publish(&svc, "f"), "1");
}

#[test]
fn publish_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    let latest = svc.get("f", None).unwrap().config;

    let stale = svc
        .publish_version(
            "f",
            PublishVersion {
                revision_id: Some("not-the-revision".into()),
                ..PublishVersion::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(stale, LambdaError::PreconditionFailed(_)),
        "{stale:?}"
    );

    let sha = svc
        .publish_version(
            "f",
            PublishVersion {
                code_sha256: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
                ..PublishVersion::default()
            },
        )
        .unwrap_err();
    assert!(matches!(sha, LambdaError::InvalidParameter(_)), "{sha:?}");
    assert!(message(sha).contains(&format!(
        "is different from current CodeSHA256 in $LATEST ({})",
        latest.code_sha256
    )));
    assert_eq!(
        listed_versions(&svc, "f"),
        ["$LATEST"],
        "nothing was published"
    );

    let ok = svc
        .publish_version(
            "f",
            PublishVersion {
                code_sha256: Some(latest.code_sha256.clone()),
                revision_id: Some(latest.revision_id.clone()),
                ..PublishVersion::default()
            },
        )
        .unwrap();
    assert_eq!(ok.config.version, "1");

    let missing = svc
        .publish_version("nope", PublishVersion::default())
        .unwrap_err();
    assert!(matches!(missing, LambdaError::NotFound(_)));
    let long = svc
        .publish_version(
            "f",
            PublishVersion {
                description: Some("x".repeat(257)),
                ..PublishVersion::default()
            },
        )
        .unwrap_err();
    assert!(matches!(long, LambdaError::Validation(_)));
}

#[test]
fn list_versions_pages_with_latest_first() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    for mb in [256, 384, 512] {
        publish(&svc, "f");
        set_memory(&svc, "f", mb);
    }
    publish(&svc, "f");
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST", "1", "2", "3", "4"]);

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = svc.list_versions("f", marker.as_deref(), Some(2)).unwrap();
        assert!(page.versions.len() <= 2);
        seen.extend(page.versions.iter().map(|v| v.config.version.clone()));
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, ["$LATEST", "1", "2", "3", "4"]);

    let first = svc.list_versions("f", None, Some(1)).unwrap();
    assert_eq!(first.versions[0].arn, format!("{ARN}:f:$LATEST"));
    assert_eq!(first.next_marker.as_deref(), Some("$LATEST"));
    assert!(matches!(
        svc.list_versions("f", Some("bogus"), None),
        Err(LambdaError::InvalidParameter(_))
    ));
    assert!(matches!(
        svc.list_versions("f", None, Some(0)),
        Err(LambdaError::Validation(_))
    ));
    assert!(matches!(
        svc.list_versions("nope", None, None),
        Err(LambdaError::NotFound(_))
    ));
}

// ---- Aliases -------------------------------------------------------------------------------

#[test]
fn alias_crud() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    publish(&svc, "f");
    set_memory(&svc, "f", 256);
    publish(&svc, "f");

    let live = svc
        .create_alias(
            "f",
            CreateAlias {
                name: "live".into(),
                function_version: "1".into(),
                description: Some("production".into()),
                routing: None,
            },
        )
        .unwrap();
    assert_eq!(live.arn, format!("{ARN}:f:live"));
    assert_eq!(live.function_version, "1");
    assert_eq!(live.description, "production");
    assert!(live.routing.is_empty());
    assert_eq!(svc.get_alias("f", "live").unwrap(), live);
    // By ARN, too.
    assert_eq!(svc.get_alias(&format!("{ARN}:f"), "live").unwrap(), live);

    let dup = svc
        .create_alias(
            "f",
            CreateAlias {
                name: "live".into(),
                function_version: "2".into(),
                ..CreateAlias::default()
            },
        )
        .unwrap_err();
    assert!(matches!(dup, LambdaError::Conflict(_)));
    assert_eq!(message(dup), format!("Alias already exists: {ARN}:f:live"));

    let stale = svc
        .update_alias(
            "f",
            "live",
            UpdateAlias {
                function_version: Some("2".into()),
                revision_id: Some("old".into()),
                ..UpdateAlias::default()
            },
        )
        .unwrap_err();
    assert!(matches!(stale, LambdaError::PreconditionFailed(_)));
    let moved = svc
        .update_alias(
            "f",
            "live",
            UpdateAlias {
                function_version: Some("2".into()),
                revision_id: Some(live.revision_id.clone()),
                ..UpdateAlias::default()
            },
        )
        .unwrap();
    assert_eq!(moved.function_version, "2");
    assert_eq!(moved.description, "production", "unchanged fields stay");
    assert_ne!(moved.revision_id, live.revision_id);

    alias(&svc, "f", "dev", "$LATEST");
    alias(&svc, "f", "beta", "2");
    let names = |v: Option<&str>| -> Vec<String> {
        svc.list_aliases("f", v, None, None)
            .unwrap()
            .aliases
            .into_iter()
            .map(|a| a.name)
            .collect()
    };
    assert_eq!(names(None), ["beta", "dev", "live"]);
    assert_eq!(names(Some("2")), ["beta", "live"]);
    assert_eq!(names(Some("$LATEST")), ["dev"]);
    assert!(names(Some("1")).is_empty());

    let page = svc.list_aliases("f", None, None, Some(2)).unwrap();
    assert_eq!(page.aliases.len(), 2);
    assert_eq!(page.next_marker.as_deref(), Some("dev"));
    let rest = svc
        .list_aliases("f", None, page.next_marker.as_deref(), Some(2))
        .unwrap();
    assert_eq!(rest.aliases.len(), 1);
    assert_eq!(rest.aliases[0].name, "live");
    assert_eq!(rest.next_marker, None);

    svc.delete_alias("f", "beta").unwrap();
    // Deleting an alias that is not there succeeds, as on AWS.
    svc.delete_alias("f", "beta").unwrap();
    let gone = svc.get_alias("f", "beta").unwrap_err();
    assert!(matches!(gone, LambdaError::NotFound(_)));
    assert_eq!(
        message(gone),
        format!("Cannot find alias arn: {ARN}:f:beta")
    );
    let update_gone = svc
        .update_alias("f", "beta", UpdateAlias::default())
        .unwrap_err();
    assert_eq!(
        message(update_gone),
        format!("Alias not found: {ARN}:f:beta")
    );
    assert!(matches!(
        svc.delete_alias("nope", "live"),
        Err(LambdaError::NotFound(_))
    ));
    assert!(matches!(
        svc.get_alias("nope", "live"),
        Err(LambdaError::NotFound(_))
    ));
}

#[test]
fn alias_inputs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    publish(&svc, "f");
    set_memory(&svc, "f", 256);
    publish(&svc, "f");
    svc.update_config(
        "f",
        UpdateConfig {
            role: Some("arn:aws:iam::000000000000:role/other".into()),
            ..UpdateConfig::default()
        },
    )
    .unwrap();
    wait_ready(&svc, "f");
    publish(&svc, "f"); // 3, another role

    let create = |name: &str, version: &str, routing: Option<BTreeMap<String, f64>>| {
        svc.create_alias(
            "f",
            CreateAlias {
                name: name.into(),
                function_version: version.into(),
                description: None,
                routing,
            },
        )
    };
    for bad_name in ["123", "a:b", "", &"x".repeat(129)] {
        assert!(
            matches!(create(bad_name, "1", None), Err(LambdaError::Validation(_))),
            "{bad_name}"
        );
    }
    assert!(matches!(
        create("a", "one", None),
        Err(LambdaError::Validation(_))
    ));
    let missing = create("a", "9", None).unwrap_err();
    assert!(matches!(missing, LambdaError::NotFound(_)));
    assert_eq!(message(missing), format!("Function not found: {ARN}:f:9"));

    // Routing: one extra published version, weight in [0, 1), same role, not with $LATEST.
    let two = Some(BTreeMap::from([
        ("1".to_owned(), 0.1),
        ("2".to_owned(), 0.1),
    ]));
    assert!(matches!(
        create("a", "3", two),
        Err(LambdaError::InvalidParameter(_))
    ));
    assert!(matches!(
        create("a", "1", weighted("1", 0.5)),
        Err(LambdaError::InvalidParameter(_))
    ));
    assert!(matches!(
        create("a", "$LATEST", weighted("1", 0.5)),
        Err(LambdaError::InvalidParameter(_))
    ));
    assert!(matches!(
        create("a", "1", weighted("2", 1.0)),
        Err(LambdaError::Validation(_))
    ));
    assert!(matches!(
        create("a", "1", weighted("2", -0.5)),
        Err(LambdaError::Validation(_))
    ));
    assert!(matches!(
        create("a", "1", weighted("$LATEST", 0.5)),
        Err(LambdaError::Validation(_))
    ));
    assert!(matches!(
        create("a", "1", weighted("7", 0.5)),
        Err(LambdaError::NotFound(_))
    ));
    assert!(matches!(
        create("a", "1", weighted("3", 0.5)),
        Err(LambdaError::InvalidParameter(_))
    ));
    assert!(
        svc.list_aliases("f", None, None, None)
            .unwrap()
            .aliases
            .is_empty(),
        "no refused alias was stored"
    );

    let ok = create("a", "1", weighted("2", 0.25)).unwrap();
    assert_eq!(ok.routing, BTreeMap::from([("2".to_owned(), 0.25)]));
    // An update is checked against the alias it would produce.
    assert!(matches!(
        svc.update_alias(
            "f",
            "a",
            UpdateAlias {
                function_version: Some("2".into()),
                ..UpdateAlias::default()
            }
        ),
        Err(LambdaError::InvalidParameter(_))
    ));
    let cleared = svc
        .update_alias(
            "f",
            "a",
            UpdateAlias {
                function_version: Some("2".into()),
                routing: Some(BTreeMap::new()),
                ..UpdateAlias::default()
            },
        )
        .unwrap();
    assert!(cleared.routing.is_empty());
    assert_eq!(cleared.function_version, "2");
}

// ---- Qualifier resolution ------------------------------------------------------------------

#[test]
fn reads_and_invokes_resolve_versions_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    publish(&svc, "f");
    set_code(&svc, "f", "b");
    publish(&svc, "f");
    set_code(&svc, "f", "c");
    alias(&svc, "f", "live", "1");
    alias(&svc, "f", "dev", "$LATEST");

    let v1 = svc.get("f", Some("1")).unwrap().config;
    let latest = svc.get("f", None).unwrap().config;
    assert_ne!(v1.code_digest, latest.code_digest);

    for (name, q) in [
        ("f", Some("live")),
        ("f:live", None),
        (
            "arn:aws:lambda:us-east-1:000000000000:function:f:live",
            None,
        ),
    ] {
        let view = svc.get(name, q).unwrap();
        assert_eq!(view.config.version, "1", "{name} {q:?}");
        assert_eq!(view.config.code_digest, v1.code_digest);
        assert_eq!(view.arn, format!("{ARN}:f:live"));
    }
    let dev = svc.get("f", Some("dev")).unwrap();
    assert_eq!(dev.config.version, "$LATEST");
    assert_eq!(dev.arn, format!("{ARN}:f:dev"));

    let missing = svc.get("f", Some("nope")).unwrap_err();
    assert_eq!(
        message(missing),
        format!("Function not found: {ARN}:f:nope")
    );

    // Invoke: a version runs its own snapshot; an alias runs the version it points to.
    let by_version = svc.resolve_for_invoke("f", Some("1")).unwrap();
    assert_eq!(by_version.config.version, "1");
    assert_eq!(by_version.config.code_digest, v1.code_digest);
    assert_eq!(by_version.arn, format!("{ARN}:f:1"));
    let path = svc.ensure_code(&by_version.config).unwrap();
    assert_eq!(
        std::fs::read_to_string(path.join("bootstrap")).unwrap(),
        "#!/bin/sh\n# a\n"
    );
    let by_alias = svc.resolve_for_invoke("f:live", None).unwrap();
    assert_eq!(by_alias.config.version, "1");
    assert_eq!(by_alias.arn, format!("{ARN}:f:live"));
    let plain = svc.resolve_for_invoke("f", None).unwrap();
    assert_eq!(plain.config.version, "$LATEST");
    assert_eq!(plain.arn, format!("{ARN}:f"));
    assert!(matches!(
        svc.resolve_for_invoke("f", Some("nope")),
        Err(LambdaError::NotFound(_))
    ));
    assert!(matches!(
        svc.resolve_for_invoke("f", Some("9")),
        Err(LambdaError::NotFound(_))
    ));
}

#[test]
fn weighted_alias_routes_by_its_weight() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    publish(&svc, "f");
    set_code(&svc, "f", "b");
    publish(&svc, "f");
    svc.create_alias(
        "f",
        CreateAlias {
            name: "canary".into(),
            function_version: "1".into(),
            description: None,
            routing: weighted("2", 0.3),
        },
    )
    .unwrap();
    // GetFunction through a weighted alias shows its FunctionVersion.
    assert_eq!(svc.get("f", Some("canary")).unwrap().config.version, "1");

    let n = 10_000;
    let mut on_two = 0;
    for _ in 0..n {
        let view = svc.resolve_for_invoke("f", Some("canary")).unwrap();
        match view.config.version.as_str() {
            "1" => {}
            "2" => on_two += 1,
            other => panic!("routed to {other}"),
        }
        assert_eq!(view.arn, format!("{ARN}:f:canary"));
    }
    // Binomial(10000, 0.3): the standard deviation is about 0.0046, so ±0.03 is over 6σ.
    let share = f64::from(on_two) / f64::from(n);
    assert!(
        (0.27..=0.33).contains(&share),
        "share on version 2: {share}"
    );
}

// ---- Deletion ------------------------------------------------------------------------------

#[test]
fn versions_in_use_by_an_alias_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    publish(&svc, "f");
    set_memory(&svc, "f", 256);
    publish(&svc, "f");
    alias(&svc, "f", "live", "1");
    svc.create_alias(
        "f",
        CreateAlias {
            name: "canary".into(),
            function_version: "1".into(),
            description: None,
            routing: weighted("2", 0.1),
        },
    )
    .unwrap();

    let e = svc.delete("f", Some("1")).unwrap_err();
    assert!(matches!(e, LambdaError::Conflict(_)));
    assert_eq!(
        message(e),
        "Unable to delete version because the following aliases reference it: [canary, live]"
    );
    // Routing counts as a reference too.
    let e = svc.delete("f", Some("2")).unwrap_err();
    assert_eq!(
        message(e),
        "Unable to delete version because the following aliases reference it: [canary]"
    );
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST", "1", "2"]);

    svc.delete_alias("f", "canary").unwrap();
    svc.delete("f", Some("2")).unwrap();
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST", "1"]);
}

#[test]
fn deleting_the_function_removes_versions_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    function(&svc, "f", "a");
    function(&svc, "g", "g");
    publish(&svc, "f");
    set_memory(&svc, "f", 256);
    publish(&svc, "f");
    alias(&svc, "f", "live", "1");
    alias(&svc, "f", "dev", "$LATEST");
    alias(&svc, "g", "live", "$LATEST");

    svc.delete("f", None).unwrap();
    for r in [svc.get("f", Some("1")), svc.get("f", Some("live"))] {
        assert!(matches!(r, Err(LambdaError::NotFound(_))));
    }
    // A new function of the same name starts from nothing.
    function(&svc, "f", "new");
    assert_eq!(listed_versions(&svc, "f"), ["$LATEST"]);
    assert!(
        svc.list_aliases("f", None, None, None)
            .unwrap()
            .aliases
            .is_empty()
    );
    assert_eq!(publish(&svc, "f"), "1");
    // Other functions' aliases are untouched.
    assert_eq!(
        svc.get_alias("g", "live").unwrap().function_version,
        "$LATEST"
    );
}

#[test]
fn versions_and_aliases_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let svc = service(dir.path());
        function(&svc, "f", "a");
        publish(&svc, "f");
        alias(&svc, "f", "live", "1");
    }
    let svc = service(dir.path());
    assert_eq!(svc.get("f", Some("live")).unwrap().config.version, "1");
    // The publish bookkeeping survived too: nothing changed, so no new version.
    assert_eq!(publish(&svc, "f"), "1");
    set_memory(&svc, "f", 256);
    assert_eq!(publish(&svc, "f"), "2");
}

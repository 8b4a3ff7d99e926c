//! Wiring the execution layer: the sandbox helper, the root filesystem template, the
//! managed runtimes' bootstraps, and the invoker.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use stratus_invoke::{Invoker, InvokerOptions, LaunchContext, ServeFn};
use stratus_lambda::RuntimeCatalog;
use stratus_sandbox::{HelperConfig, Layout, Spawner};

use crate::Config;
use crate::credentials::Credentials;

/// Lambda's `sbx_user1051`.
const FUNCTION_UID: u32 = 993;
const FUNCTION_GID: u32 = 990;

/// Starts the sandbox helper and builds the invoker. `aws` will hold the AWS API router,
/// which each environment's listener also serves (for SDK calls from functions).
pub fn start(
    config: &Config,
    catalog: RuntimeCatalog,
    session: &(Credentials, String),
    aws: Arc<OnceLock<axum::Router>>,
    logs: Arc<dyn stratus_aws::LogSink>,
    meter: Arc<dyn stratus_aws::Meter>,
    roles: Option<Arc<dyn stratus_aws::RoleSessions>>,
) -> anyhow::Result<Invoker> {
    let data = &config.data_dir;
    let layout =
        Layout::detect(&config.cgroup_root, &config.cgroup_parent).context("finding cgroups")?;
    let rootfs = data.join("sandbox/rootfs");
    stratus_sandbox::rootfs::build_template(&rootfs, FUNCTION_UID, FUNCTION_GID)
        .context("building the root filesystem template")?;
    let runtime_dir = data.join("runtime");
    let (creds, token) = session;
    let pythons = catalog.interpreters(stratus_lambda::RuntimeKind::Python);
    stratus_invoke::launch::install_bootstraps(&runtime_dir, &pythons)
        .context("installing bootstraps")?;
    let launch = LaunchContext {
        region: config.region.clone(),
        runtime_dir,
        access_key_id: creds.access_key_id.clone(),
        secret_access_key: creds.secret_access_key.clone(),
        session_token: token.clone(),
        roles,
    };
    let helper = HelperConfig {
        rootfs,
        cgroups: layout.clone(),
        host_uid: config.sandbox_uid,
        host_gid: config.sandbox_gid,
        uid: FUNCTION_UID,
        gid: FUNCTION_GID,
        network: config.sandbox_network,
        expedite_rcu: config.expedite_rcu,
        port: stratus_invoke::launch::ENV_PORT,
        pool: config.sandbox_pool,
        zygotes: stratus_invoke::launch::zygotes(&catalog, &launch),
        zygote_pool: config.zygote_pool,
        log: config.log.clone(),
        // Functions' /tmp, on disk at their EphemeralStorage size.
        ephemeral_dir: config.tmp_on_disk.then(|| data.join("sandbox/ephemeral")),
        instance: stratus_sandbox::instance::new_tag(),
        registry: stratus_sandbox::instance::REGISTRY.into(),
    };
    let exe = std::env::current_exe().context("locating the stratus binary")?;
    let (exits_tx, exits_rx) = tokio::sync::mpsc::unbounded_channel();
    let spawner = Spawner::start(&exe, &helper, exits_tx).context("starting the sandbox helper")?;
    let serve: ServeFn = Arc::new(move |listener, endpoint| {
        stratus_api_lambda::runtime_api::serve(listener, endpoint, aws.get().cloned())
    });
    let opts = InvokerOptions {
        launch,
        cgroups: layout,
        logs,
        keep_alive: Duration::from_secs(config.keep_alive),
        memory_budget_mb: config.memory_budget_mb(),
        meter,
    };
    Ok(Invoker::new(spawner, exits_rx, catalog, opts, serve))
}

/// True when this process can create sandboxes at all.
pub fn supported(config: &Config) -> Result<(), String> {
    if !config.sandbox {
        return Err("disabled by configuration (sandbox = false)".into());
    }
    if !nix_is_root() {
        return Err("the server is not running as root".into());
    }
    if !Path::new("/proc/self/ns/user").exists() {
        return Err("the kernel has no user namespaces".into());
    }
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

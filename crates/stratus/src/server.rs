//! Builds and runs a whole Stratus server from a [`Config`].

use std::future::Future;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use stratus_api_lambda::{ApiState, LambdaApi};
use stratus_gateway::{Gateway, GatewayOptions, ServeOptions};
use stratus_iam::IamService;
use stratus_lambda::{FunctionService, RuntimeCatalog, Scope, ServiceOptions};
use stratus_logs::LogService;
use stratus_metering::{Metering, MeteringOptions, PlatformGauges, Prices};
use stratus_store::Store;
use tokio::net::TcpListener;

use crate::Config;
use crate::credentials::{self, Credentials, KeyRing};
use crate::surfaces::{GaugeSource, Observer, UsageApi, metrics_handler};

/// The store's error, with what to do about it when the store was refused as damaged.
fn damaged_store(e: stratus_store::StoreError) -> anyhow::Error {
    match &e {
        stratus_store::StoreError::Damaged { path, .. } => {
            let dir = path.parent().unwrap_or(path);
            anyhow::anyhow!(
                "{e}.\nStratus will not run on it: functions and versions acknowledged to \
                 clients may be missing, silently. Nothing was changed.\n\
                 To restore: stop, copy the whole data directory {dir} aside, then restore it \
                 from a backup (all of it: stratus.db with its -wal file and \
                 stratus.db-commits, and blobs/).\n\
                 To run on what is left instead: start once with --accept-damaged-store \
                 (STRATUS_ACCEPT_DAMAGED_STORE=1, or accept_damaged_store = true in the \
                 config file). Code packages the database no longer references are kept in \
                 {blobs} (named by their SHA-256), so lost functions can be created again.",
                dir = dir.display(),
                blobs = dir.join("blobs").display(),
            )
        }
        _ => anyhow::Error::new(e).context("opening the store"),
    }
}

/// What a started server tells its caller.
#[derive(Debug, Clone)]
pub struct Started {
    pub addr: std::net::SocketAddr,
    pub credentials: Credentials,
    pub credentials_file: std::path::PathBuf,
}

/// Opens the data directory and builds the services and the HTTP app. The metering service
/// comes back too: [`Metering::close`] commits its last records at a graceful stop.
pub async fn build(config: &Config) -> anyhow::Result<(axum::Router, Credentials, Metering)> {
    config.validate()?;
    let data_dir = config.data_dir.clone();
    crate::privacy::prepare(&data_dir)?;
    let configured = config
        .access_key_id
        .clone()
        .zip(config.secret_access_key.clone())
        .map(|(access_key_id, secret_access_key)| Credentials {
            access_key_id,
            secret_access_key,
        });
    let creds = credentials::load_or_create(&data_dir, configured)
        .with_context(|| format!("preparing credentials in {}", data_dir.display()))?;

    let opts = ServiceOptions {
        scope: Scope {
            region: config.region.clone(),
            account_id: config.account_id.clone(),
        },
        code_dir: data_dir.join("code"),
        concurrent_executions: config.concurrent_executions,
    };
    // Opening the store (garbage collection) and looking for runtimes touch the disk and
    // start `node --version`: keep them off the async workers.
    let aws_scope = stratus_aws::Scope {
        region: config.region.clone(),
        account_id: config.account_id.clone(),
    };
    let logs_options = stratus_logs::LogsOptions {
        max_group_bytes: config.log_group_max_mb.saturating_mul(1 << 20),
        ..Default::default()
    };
    let metering_options = MeteringOptions {
        retention_days: config.usage_retention_days,
        max_rows: config.usage_max_rows,
        prices: Prices {
            per_million_requests: config.price_per_million_requests,
            per_gb_second: config.price_per_gb_second,
        },
        ..Default::default()
    };
    let accept_damaged = config.accept_damaged_store;
    let iam_scope = aws_scope.clone();
    let (functions, catalog, logs, metering, iam) = tokio::task::spawn_blocking(
        move || -> anyhow::Result<(FunctionService, RuntimeCatalog, LogService, Metering, IamService)> {
            let store = Store::open_with(&data_dir, accept_damaged).map_err(damaged_store)?;
            // Lambda's tables predate namespaces: they are Lambda's.
            let adopted = store.meta.adopt_unnamespaced("lambda")?;
            if adopted > 0 {
                tracing::info!(
                    documents = adopted,
                    "moved Lambda's tables into its namespace"
                );
            }
            let iam = IamService::new(store.namespace("iam"), iam_scope);
            let store = store.namespace("lambda");
            let logs =
                LogService::open(&data_dir, aws_scope, logs_options).context("opening the logs")?;
            let metering = Metering::open(&data_dir, metering_options)
                .context("opening the usage database")?;
            let catalog = RuntimeCatalog::discover();
            tracing::info!(runtimes = ?catalog.ids(), "runtimes offered by this host");
            Ok((
                FunctionService::new(store, opts, catalog.clone())?,
                catalog,
                logs,
                metering,
                iam,
            ))
        },
    )
    .await??;
    sweep_logs_periodically(logs.clone());

    // Keys: the root pair, IAM's users' keys and STS's sessions, and the functions' sessions
    // of their execution roles (made in memory as their environments start).
    let keys = KeyRing::with(&creds, &config.account_id)
        .with_source(Arc::new(crate::identity::IamKeys(iam.clone())));
    let roles = Arc::new(crate::identity::FunctionSessions::new(
        iam.clone(),
        keys.clone(),
        &config.account_id,
    ));
    if config.check_execution_roles {
        functions.check_roles_with(roles.clone());
    }
    // Never used while `roles` is given (every function gets a session of its role); a
    // pair no key ring holds, so it authenticates nothing.
    let session = credentials::session();
    let aws_app: Arc<OnceLock<axum::Router>> = Arc::default();
    let invoker = match crate::sandbox::supported(config) {
        Ok(()) => match crate::sandbox::start(
            config,
            catalog,
            &session,
            aws_app.clone(),
            Arc::new(logs.clone()),
            Arc::new(metering.clone()),
            Some(roles),
        ) {
            Ok(inv) => Some(inv),
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "execution environments unavailable: Invoke will fail"
                );
                None
            }
        },
        Err(why) => {
            tracing::warn!(%why, "execution environments unavailable: Invoke will fail");
            None
        }
    };

    let events = invoker.clone().map(|inv| {
        stratus_invoke::AsyncQueue::start(
            functions.store(),
            functions.clone(),
            inv,
            stratus_invoke::QueueOptions {
                retry_base: std::time::Duration::from_secs(config.async_retry_base),
            },
        )
    });
    let provisioner = invoker
        .clone()
        .map(|inv| stratus_invoke::Provisioner::start(functions.clone(), inv));
    let gauges: GaugeSource = {
        let (invoker, events) = (invoker.clone(), events.clone());
        Arc::new(move || PlatformGauges {
            live_environments: invoker.as_ref().map_or(0, |i| i.live_count() as u64),
            idle_environments: invoker.as_ref().map_or(0, |i| i.idle_count() as u64),
            queue_depth: events.as_ref().map_or(0, |q| q.depth()),
            oldest_event_age: events.as_ref().and_then(|q| q.oldest_enqueued_ms()).map_or(
                std::time::Duration::ZERO,
                |t| {
                    let now = stratus_aws::clock::now_ms().max(0) as u64;
                    std::time::Duration::from_millis(now.saturating_sub(t))
                },
            ),
        })
    };
    // Who may do what: IAM's policies, and functions' own policies for services.
    let authorizer = Arc::new(crate::identity::IamAuthorizer::new(
        iam.clone(),
        &config.account_id,
    ));
    let invoke = stratus_invoke::Functions::new(functions.clone(), invoker, events)
        .with_authorizer(authorizer.clone());
    // What other services run functions through (triggers: HTTP APIs, S3 and SQS events,
    // EventBridge); none is built yet, each will take this at its construction.
    let _function_invoker: Arc<dyn stratus_aws::FunctionInvoker> = Arc::new(invoke.clone());
    let lambda = LambdaApi::new(ApiState {
        functions,
        invoke,
        provisioner,
        presign_credentials: (creds.access_key_id.clone(), creds.secret_access_key.clone()),
        region: config.region.clone(),
    });
    if config.test_mode {
        tracing::warn!("test mode: POST /_stratus/reset deletes every resource");
    }
    let app = Gateway::new(
        Arc::new(keys),
        GatewayOptions {
            region: config.region.clone(),
            test_mode: config.test_mode,
            body_idle_timeout: std::time::Duration::from_secs(config.body_timeout),
            body_memory: usize::try_from(config.body_memory_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
        },
    )
    .authorize_with(authorizer)
    .register(Arc::new(lambda))
    .register(Arc::new(stratus_api_sts::StsApi::new(iam.clone())))
    .register(Arc::new(stratus_api_iam::IamApi::new(iam)))
    .register(Arc::new(stratus_api_logs::LogsApi::new(logs)))
    .register(Arc::new(UsageApi {
        metering: metering.clone(),
    }))
    .fixed(
        "/_stratus/metrics",
        metrics_handler(metering.clone(), gauges.clone()),
    )
    .fixed("/metrics", metrics_handler(metering.clone(), gauges))
    .observe(Arc::new(Observer(metering.clone())))
    .app();
    let _ = aws_app.set(app.clone());
    Ok((app, creds, metering))
}

/// Enforces log retention: expired events are dropped once a minute.
fn sweep_logs_periodically(logs: LogService) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let logs = logs.clone();
            let swept =
                tokio::task::spawn_blocking(move || logs.sweep(stratus_aws::clock::now_ms())).await;
            match swept {
                Ok(Ok(stats)) if stats.bytes_freed > 0 => {
                    tracing::debug!(?stats, "log retention enforced");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "enforcing log retention"),
                Err(e) => tracing::warn!(error = %e, "enforcing log retention"),
            }
        }
    });
}

/// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
/// `on_ready` runs once everything is open and the server is about to accept requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let (app, creds, metering) = build(&config).await?;
    let started = Started {
        addr: listener.local_addr()?,
        credentials: creds,
        credentials_file: credentials::credentials_path(&config.data_dir),
    };
    on_ready(&started);
    let opts = ServeOptions {
        max_connections: config.max_connections,
        header_timeout: std::time::Duration::from_secs(config.header_timeout),
    };
    stratus_gateway::serve(listener, app, opts, shutdown)
        .await
        .context("serving")?;
    tokio::task::spawn_blocking(move || metering.close()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

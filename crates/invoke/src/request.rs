//! What the invoker is asked and what it answers: an [`InvokeRequest`] (the resolved
//! function version, its code, the payload), an [`InvokeResult`], or an [`InvokeError`].

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use stratus_lambda::{FunctionConfig, FunctionService};
use stratus_sandbox::SpawnError;

use crate::launch;
use crate::limits::Throttle;

/// Why an invocation has no result. Apart from [`InvokeError::Throttled`], the platform
/// failed, not the function: a function's own failures (its entry point missing, init
/// errors, crashes, timeouts) are results with a function error.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// A concurrency limit or the memory budget is in use; the caller should retry later.
    #[error("Rate Exceeded.")]
    Throttled(Throttle),
    /// The function's code could not be unpacked.
    #[error("unpacking the function's code: {0}")]
    Code(#[source] stratus_lambda::LambdaError),
    /// The configuration could not be planned into a sandbox.
    #[error("planning the environment: {0}")]
    Launch(#[from] launch::LaunchError),
    /// The sandbox helper made no sandbox.
    #[error("creating the environment: {0}")]
    Spawn(#[from] SpawnError),
    /// The environment's log stream could not be opened.
    #[error("opening the log stream: {0}")]
    Logs(#[source] std::io::Error),
    /// The environment's output could not be captured.
    #[error("capturing output: {0}")]
    Output(#[source] std::io::Error),
    /// A task on the blocking pool panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The function's code on the host. Only creating an environment needs it, so a warm
/// invoke never looks at the file system for it.
#[derive(Clone)]
pub enum Code {
    /// Unpacked at this path.
    At(PathBuf),
    /// Where this service keeps the config's unpacked code, unpacked again if it is gone.
    Of(FunctionService),
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::At(path) => f.debug_tuple("At").field(path).finish(),
            Code::Of(_) => f.write_str("Of(FunctionService)"),
        }
    }
}

impl Code {
    /// The unpacked code of `config` (a `stat` when it is there; unpacking, on the blocking
    /// pool, when it is not).
    pub(crate) async fn path(&self, config: &FunctionConfig) -> Result<PathBuf, InvokeError> {
        let svc = match self {
            Code::At(path) => return Ok(path.clone()),
            Code::Of(svc) => svc,
        };
        if let Some(path) = svc.unpacked_code(config) {
            return Ok(path);
        }
        let (svc, config) = (svc.clone(), config.clone());
        tokio::task::spawn_blocking(move || svc.ensure_code(&config))
            .await?
            .map_err(InvokeError::Code)
    }
}

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub config: FunctionConfig,
    pub code: Code,
    /// The ARN the caller used (qualified or not), as the runtime reports it.
    pub invoked_arn: String,
    pub payload: Bytes,
    /// Client context JSON (already base64-decoded).
    pub client_context: Option<String>,
    /// The function's reserved concurrency, if any.
    pub reserved_concurrency: Option<u32>,
    /// The account's unreserved pool (limit minus all reservations).
    pub unreserved_limit: u32,
}

impl InvokeRequest {
    /// The request that runs `view`, the version resolved for a call of `qualifier` (an
    /// alias resolves to the version it routes to): every path that invokes a function
    /// builds its request here.
    pub fn new(
        service: &FunctionService,
        view: stratus_lambda::FunctionView,
        qualifier: Option<&str>,
        payload: Bytes,
        client_context: Option<String>,
        code: Code,
    ) -> InvokeRequest {
        let invoked_arn = match qualifier {
            Some(q) => service.scope().qualified_arn(&view.config.name, q),
            None => view.arn,
        };
        InvokeRequest {
            config: view.config,
            code,
            invoked_arn,
            payload,
            client_context,
            reserved_concurrency: view.reserved_concurrency,
            unreserved_limit: service.unreserved_limit(),
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone)]
pub struct InvokeResult {
    pub request_id: String,
    pub payload: Bytes,
    /// `Some("Unhandled")` when the payload is an error.
    pub function_error: Option<String>,
    pub executed_version: String,
    /// The last 4 KB of the invocation's log.
    pub log_tail: Vec<u8>,
    pub duration: Duration,
    pub init_duration: Option<Duration>,
    pub max_memory_used_mb: u64,
}

//! The invoker: finds or creates an execution environment for each invocation, hands the
//! event to its runtime, enforces the deadline, and frames the logs.
//!
//! One invocation at a time per environment; an idle environment of the same function
//! version and configuration is reused before a new one is made; environments are created
//! concurrently (the helper serialises only the `clone` itself).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratus_lambda::{FunctionConfig, RuntimeCatalog};
use stratus_sandbox::{Exit, Layout, SpawnError, SpawnFailure, Spawner};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::endpoint::{Invocation, RuntimeEndpoint, RuntimeEvent};
use crate::environment::{Env, EnvKey};
use crate::launch::{self, LaunchContext};
use crate::limits::{
    ConcurrencyGate, Freed, MemoryBudget, MemoryLease, Permit, Releases, Throttle,
};
use crate::logs::now_ms;
use crate::output::Output;
use crate::report::{self, crash_error, error_json};
use crate::request::{Code, InvokeError, InvokeRequest, InvokeResult};

/// Lambda's limit on the init phase.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an environment's end may take: from the kill until no process of it is left.
pub const END_DEADLINE: Duration = Duration::from_secs(1);

/// Serves an environment's listener (Runtime API and AWS endpoint); returns a handle that
/// stops serving when aborted. Provided by the API crate.
pub type ServeFn =
    Arc<dyn Fn(std::net::TcpListener, RuntimeEndpoint) -> AbortHandle + Send + Sync + 'static>;

/// A slot of the function's concurrency, taken by [`Invoker::admit`]; the invocation given it
/// to [`Invoker::invoke_admitted`] holds it until it ends.
pub struct Admission {
    _permit: Permit,
}

fn trace_id() -> String {
    let epoch = now_ms() / 1000;
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
        &rand[..24],
        &rand[16..32]
    )
}

pub struct InvokerOptions {
    pub launch: LaunchContext,
    pub cgroups: Layout,
    /// Where environments' output goes: CloudWatch Logs, wired by the binary.
    pub logs: Arc<dyn stratus_aws::LogSink>,
    pub keep_alive: Duration,
    /// The sum of MemorySize over live environments may not exceed this.
    pub memory_budget_mb: u64,
    /// Told of every invocation that ran or was throttled (usage metering, wired by the
    /// binary; `stratus_aws::usage::NoMeter` keeps nothing).
    pub meter: Arc<dyn stratus_aws::Meter>,
}

struct Inner {
    gate: ConcurrencyGate,
    memory: MemoryBudget,
    releases: Releases,
    spawner: Spawner,
    catalog: RuntimeCatalog,
    opts: InvokerOptions,
    serve: ServeFn,
    idle: Mutex<HashMap<EnvKey, Vec<Arc<Env>>>>,
    /// Every environment whose exit has not been seen, by id.
    live: Mutex<HashMap<String, Arc<Env>>>,
    /// Exit watchers, registered before the spawn so an early exit is never missed.
    exits: Mutex<HashMap<String, watch::Sender<Option<Exit>>>>,
}

#[derive(Clone)]
pub struct Invoker {
    inner: Arc<Inner>,
}

enum Created {
    Ready(Arc<Env>),
    /// Init failed; the result says how (and the outcome, as metered), and the environment
    /// is gone.
    Failed(InvokeResult, stratus_aws::Outcome),
}

enum Outcome {
    Response(Bytes),
    FunctionError(Bytes),
    TooLarge(usize),
    Timeout,
    Crashed(Option<Exit>),
}

impl Invoker {
    pub fn new(
        spawner: Spawner,
        mut exits: mpsc::UnboundedReceiver<Exit>,
        catalog: RuntimeCatalog,
        opts: InvokerOptions,
        serve: ServeFn,
    ) -> Invoker {
        let releases = Releases::default();
        let inv = Invoker {
            inner: Arc::new(Inner {
                gate: ConcurrencyGate::new(releases.clone()),
                memory: MemoryBudget::announcing(opts.memory_budget_mb, releases.clone()),
                releases,
                spawner,
                catalog,
                opts,
                serve,
                idle: Mutex::default(),
                live: Mutex::default(),
                exits: Mutex::default(),
            }),
        };
        let weak = Arc::downgrade(&inv.inner);
        tokio::spawn(async move {
            while let Some(exit) = exits.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                Invoker { inner }.on_exit(exit);
            }
        });
        let weak = Arc::downgrade(&inv.inner);
        tokio::spawn(async move {
            let period = {
                let Some(inner) = weak.upgrade() else { return };
                (inner.opts.keep_alive / 4)
                    .clamp(Duration::from_millis(100), Duration::from_secs(5))
            };
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { break };
                Invoker { inner }.reap_idle();
            }
        });
        inv
    }

    fn on_exit(&self, exit: Exit) {
        tracing::debug!(env = %exit.id, code = ?exit.exit_code, signal = ?exit.signal, "environment exited");
        if let Some(tx) = self.lock_exits().remove(&exit.id) {
            let _ = tx.send(Some(exit.clone()));
        }
        let env = self.lock_live().remove(&exit.id);
        if let Some(env) = env {
            env.server.abort();
            env.release_memory();
            if let Some(list) = self.lock_idle().get_mut(&env.key) {
                list.retain(|e| e.id != env.id);
            }
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, HashMap<EnvKey, Vec<Arc<Env>>>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Env>>> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_exits(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<Exit>>>> {
        self.inner.exits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `want` initialised environments of `config` (provisioned concurrency), creating
    /// the missing ones concurrently. Returns how many are allocated now.
    pub async fn ensure_provisioned(
        &self,
        config: &FunctionConfig,
        code_path: &std::path::Path,
        want: u32,
    ) -> u32 {
        let key = EnvKey::of(config);
        let have = self
            .lock_live()
            .values()
            .filter(|e| e.key == key && e.is_provisioned() && e.exited().is_none())
            .count() as u32;
        if have >= want {
            return have;
        }
        let req = InvokeRequest {
            config: config.clone(),
            code: Code::At(code_path.to_owned()),
            invoked_arn: String::new(),
            payload: Bytes::new(),
            client_context: None,
            reserved_concurrency: None,
            unreserved_limit: 0,
        };
        let creations = (have..want).map(|_| {
            let req = &req;
            let key = &key;
            async move {
                let id = uuid::Uuid::new_v4().to_string();
                self.create(req, key, &id, "provisioned-concurrency").await
            }
        });
        let mut made = 0;
        for created in join_all(creations).await {
            match created {
                Ok(Created::Ready(env)) => {
                    env.provisioned
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    // What init printed belongs to no invocation.
                    env.output.end_invocation();
                    self.lock_idle()
                        .entry(env.key.clone())
                        .or_default()
                        .push(env);
                    made += 1;
                }
                Ok(Created::Failed(r, _)) => {
                    tracing::warn!(function = %config.name, error = %String::from_utf8_lossy(&r.payload), "provisioned environment failed to initialise");
                }
                Err(e) => {
                    tracing::warn!(function = %config.name, error = %e, "provisioning an environment")
                }
            }
        }
        have + made
    }

    /// Provisioned environments of `key` that are initialised and alive now.
    pub fn provisioned_count(&self, key: &EnvKey) -> u32 {
        self.lock_live()
            .values()
            .filter(|e| &e.key == key && e.is_provisioned() && e.exited().is_none())
            .count() as u32
    }

    /// Releases provisioned environments whose configuration is no longer wanted: they become
    /// ordinary idle environments, reaped after the keep-alive.
    pub fn retain_provisioned(&self, wanted: &std::collections::HashSet<EnvKey>) {
        for env in self.lock_live().values() {
            if env.is_provisioned() && !wanted.contains(&env.key) {
                env.provisioned
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut t) = env.last_used.lock() {
                    *t = Instant::now();
                }
            }
        }
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> u32 {
        self.inner.gate.in_flight()
    }

    /// Environments alive now (created and not yet exited).
    pub fn live_count(&self) -> usize {
        self.lock_live().len()
    }

    /// Environments alive and waiting for an invocation now.
    pub fn idle_count(&self) -> usize {
        self.lock_idle().values().map(Vec::len).sum()
    }

    /// Kills idle environments unused for longer than the keep-alive.
    fn reap_idle(&self) {
        let keep = self.inner.opts.keep_alive;
        let mut doomed = Vec::new();
        for list in self.lock_idle().values_mut() {
            list.retain(|e| {
                if e.is_provisioned() {
                    return true;
                }
                let old = e
                    .last_used
                    .lock()
                    .map(|t| t.elapsed() > keep)
                    .unwrap_or(true);
                if old {
                    doomed.push(e.clone());
                }
                !old
            });
        }
        for env in doomed {
            tracing::debug!(env = %env.id, "reaping idle environment");
            env.release_memory();
            self.destroy(&env);
        }
    }

    fn take_idle(&self, key: &EnvKey) -> Option<Arc<Env>> {
        let mut idle = self.lock_idle();
        let list = idle.get_mut(key)?;
        while let Some(env) = list.pop() {
            if env.exited().is_none() {
                return Some(env);
            }
        }
        None
    }

    /// Ends `env` for good, through its cgroup (see [`Layout::kill`]): every process of
    /// it, frozen or spinning or forking, is gone within [`END_DEADLINE`]. The kill and the
    /// wait run off the async threads; the helper then reports the exit.
    fn destroy(&self, env: &Env) {
        let cgroups = self.inner.opts.cgroups.clone();
        let (id, pid) = (env.id.clone(), env.pid);
        let end = move || {
            if !cgroups.kill_and_wait(&id, END_DEADLINE) {
                tracing::warn!(env = %id, "processes left in the environment's cgroup after its end");
                stratus_sandbox::kill(pid);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(end)),
            Err(_) => end(),
        }
    }

    /// Ends the environments of function `name` (of version `version` only, if given):
    /// idle ones now, busy ones when their invocation ends (the function was deleted).
    pub fn end_function(&self, name: &str, version: Option<&str>) {
        let of = |e: &Env| e.key.is(name, version);
        let doomed: Vec<Arc<Env>> = {
            let mut idle = self.lock_idle();
            let mut doomed = Vec::new();
            for list in idle.values_mut() {
                list.retain(|e| {
                    if of(e) {
                        doomed.push(e.clone());
                    }
                    !of(e)
                });
            }
            doomed
        };
        for env in self.lock_live().values().filter(|e| of(e)) {
            env.retired
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        for env in doomed {
            tracing::debug!(env = %env.id, "ending an environment of a deleted function");
            env.release_memory();
            self.destroy(&env);
        }
    }

    /// Claims memory for a new environment, evicting idle environments (least recently
    /// used first) when the budget is full. Throttles when even that is not enough.
    fn reserve_memory(&self, mb: u64) -> Result<MemoryLease, InvokeError> {
        loop {
            let short = match self.inner.memory.reserve(mb) {
                Ok(lease) => return Ok(lease),
                Err(short) => short,
            };
            let victim = {
                let mut idle = self.lock_idle();
                let oldest = idle
                    .iter()
                    .flat_map(|(k, list)| {
                        list.iter()
                            .enumerate()
                            .filter(|(_, e)| !e.is_provisioned())
                            .map(move |(i, e)| (k.clone(), i, e.idle_for()))
                    })
                    .max_by_key(|(_, _, idle_for)| *idle_for);
                oldest.and_then(|(k, i, _)| idle.get_mut(&k).map(|list| list.remove(i)))
            };
            let Some(victim) = victim else {
                tracing::debug!(short_mb = short, "memory budget exhausted");
                return Err(InvokeError::Throttled(
                    Throttle::ConcurrentInvocationLimitExceeded,
                ));
            };
            tracing::debug!(env = %victim.id, "evicting an idle environment for memory");
            victim.release_memory();
            self.destroy(&victim);
        }
    }

    /// Memory claimed by live environments, and the budget (MiB).
    pub fn memory(&self) -> (u64, u64) {
        (self.inner.memory.used_mb(), self.inner.memory.budget_mb())
    }

    /// Takes a concurrency slot for an invocation of `function`, or says which limit is in
    /// use. [`Invoker::invoke`] does this itself; a caller that must know whether it was
    /// admitted before the invocation ends (the asynchronous queue) calls it first.
    pub fn admit(
        &self,
        function: &str,
        reserved_concurrency: Option<u32>,
        unreserved_limit: u32,
    ) -> Result<Admission, Throttle> {
        let permit = self
            .inner
            .gate
            .acquire(function, reserved_concurrency, unreserved_limit)?;
        Ok(Admission { _permit: permit })
    }

    /// Calls `f` whenever capacity frees: an invocation ends (its concurrency slot), an
    /// environment goes (its memory). It runs on the releasing thread and must not block.
    pub fn on_capacity(&self, f: impl Fn(Freed<'_>) + Send + Sync + 'static) {
        self.inner.releases.subscribe(f);
    }

    /// Runs one invocation synchronously and returns its result.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResult, InvokeError> {
        let admission = match self.admit(
            &req.config.name,
            req.reserved_concurrency,
            req.unreserved_limit,
        ) {
            Ok(a) => a,
            Err(t) => {
                self.meter_throttle(&req.config);
                return Err(InvokeError::Throttled(t));
            }
        };
        self.invoke_admitted(admission, req).await
    }

    /// Meters an invocation refused by a limit (the queue meters its own refusals).
    pub fn meter_throttle(&self, c: &FunctionConfig) {
        self.inner.opts.meter.record(stratus_aws::InvocationRecord {
            request_id: uuid::Uuid::new_v4().to_string(),
            function: c.name.clone(),
            version: c.version.clone(),
            start_ms: now_ms(),
            duration: Duration::ZERO,
            init: None,
            billed_ms: 0,
            memory_mb: c.memory_size,
            max_memory_used_mb: 0,
            outcome: stratus_aws::Outcome::Throttled,
        });
    }

    /// Runs one invocation already admitted; it can still be throttled by the memory budget
    /// when it needs a new environment.
    #[tracing::instrument(skip_all, fields(function = %req.config.name, version = %req.config.version))]
    pub async fn invoke_admitted(
        &self,
        admission: Admission,
        req: InvokeRequest,
    ) -> Result<InvokeResult, InvokeError> {
        let _admission = admission;
        let request_id = uuid::Uuid::new_v4().to_string();
        let key = EnvKey::of(&req.config);
        if let Some(env) = self.take_idle(&key) {
            env.output.begin_invocation();
            return Ok(self.run(env, &req, request_id, None).await);
        }
        let started = Instant::now();
        let created = self.create(&req, &key, &request_id, "on-demand").await;
        if let Err(InvokeError::Throttled(_)) = &created {
            self.meter_throttle(&req.config);
        }
        match created? {
            Created::Ready(env) => {
                let init = started.elapsed();
                Ok(self.run(env, &req, request_id, Some(init)).await)
            }
            Created::Failed(result, outcome) => {
                let c = &req.config;
                self.inner.opts.meter.record(stratus_aws::InvocationRecord {
                    request_id: result.request_id.clone(),
                    function: c.name.clone(),
                    version: c.version.clone(),
                    start_ms: now_ms().saturating_sub(result.duration.as_millis() as u64),
                    duration: Duration::ZERO,
                    init: result.init_duration,
                    billed_ms: stratus_aws::usage::billed_ms(Duration::ZERO, result.init_duration),
                    memory_mb: c.memory_size,
                    max_memory_used_mb: result.max_memory_used_mb,
                    outcome,
                });
                Ok(result)
            }
        }
    }

    async fn create(
        &self,
        req: &InvokeRequest,
        key: &EnvKey,
        request_id: &str,
        initialization_type: &str,
    ) -> Result<Created, InvokeError> {
        let started = Instant::now();
        let code_path = req.code.path(&req.config).await?;
        let (endpoint, queue, events, env_id) =
            RuntimeEndpoint::new(self.inner.spawner.sandbox_id());
        let plan = launch::plan(
            &env_id,
            &req.config,
            &code_path,
            &self.inner.catalog,
            &self.inner.opts.launch,
            initialization_type,
        )?;
        let lease = self.reserve_memory(u64::from(req.config.memory_size))?;
        let init_limits = plan.spec.limits;
        let steady_cpu_millis = plan.steady_cpu_millis;
        let (exit_tx, exit_rx) = watch::channel(None);
        self.lock_exits().insert(env_id.clone(), exit_tx);
        tracing::debug!(env = %env_id, us = started.elapsed().as_micros() as u64, "asking for a sandbox");
        // The log stream's files are made while the sandbox is: off the cold start's path.
        let opening = {
            let (logs, group, stream) = (
                self.inner.opts.logs.clone(),
                plan.log_group.clone(),
                plan.log_stream.clone(),
            );
            tokio::task::spawn_blocking(move || logs.open(&group, &stream))
        };
        let spawned = match self.inner.spawner.spawn(plan.spec).await {
            Ok(s) => {
                tracing::debug!(env = %env_id, us = started.elapsed().as_micros() as u64, "sandbox received");
                s
            }
            Err(e) => {
                self.lock_exits().remove(&env_id);
                if let SpawnError::Failed(SpawnFailure::Program { detail, .. }) = &e {
                    // The function's entry point is missing or not executable: its fault.
                    let payload = error_json(
                        "Runtime.InvalidEntrypoint",
                        &format!(
                            "RequestId: {request_id} Error: fork/exec {}: {detail}",
                            req.config.handler
                        ),
                    );
                    return Ok(Created::Failed(
                        self.failed_init(req, request_id, payload, started, None),
                        stratus_aws::Outcome::FunctionError,
                    ));
                }
                return Err(e.into());
            }
        };
        let stream = opening
            .await
            .map_err(|e| InvokeError::Logs(std::io::Error::other(e)))?
            .map_err(InvokeError::Logs)?;
        let output = Output::new(spawned.output, stream).map_err(InvokeError::Output)?;
        // The cold invocation's log includes what init printed.
        output.begin_invocation();
        tokio::spawn(output.clone().run());
        // Frozen whenever it waits for an event (see `RuntimeEndpoint::next`).
        match self.inner.opts.cgroups.freezer(&env_id) {
            Ok(f) => endpoint.set_freezer(f),
            Err(e) => {
                tracing::debug!(env = %env_id, error = %e, "no freezer: the environment runs between invocations")
            }
        }
        let server = (self.inner.serve)(spawned.listener, endpoint);
        let env = Arc::new(Env {
            id: env_id.clone(),
            key: key.clone(),
            pid: spawned.pid,
            queue,
            events: tokio::sync::Mutex::new(events),
            exit: exit_rx,
            output,
            server,
            last_used: Mutex::new(Instant::now()),
            lease: Mutex::new(Some(lease)),
            provisioned: std::sync::atomic::AtomicBool::new(false),
            retired: std::sync::atomic::AtomicBool::new(false),
            peak: self.inner.opts.cgroups.peak_meter(&env_id).ok(),
        });
        self.lock_live().insert(env_id.clone(), env.clone());
        // An exit that raced the registration above was recorded in the watch already.
        if let Some(exit) = env.exited() {
            self.on_exit(exit);
        }

        let mut exit = env.exit.clone();
        let mut events = env.events.lock().await;
        let outcome = tokio::select! {
            ev = events.recv() => ev,
            _ = exit.wait_for(Option::is_some) => None,
            _ = tokio::time::sleep(INIT_TIMEOUT) => {
                self.destroy(&env);
                let payload = error_json(
                    "Runtime.InitTimeout",
                    &format!("RequestId: {request_id} Error: init phase did not complete within {} seconds", INIT_TIMEOUT.as_secs()),
                );
                drop(events);
                return Ok(Created::Failed(self.failed_init(req, request_id, payload, started, Some(&env)), stratus_aws::Outcome::Timeout));
            }
        };
        drop(events);
        match outcome {
            Some(RuntimeEvent::Ready) => {
                tracing::debug!(env = %env.id, us = started.elapsed().as_micros() as u64, "runtime ready");
                // Init is over: from now on the CPU is the memory-proportional share.
                let steady = stratus_sandbox::Limits {
                    cpu_millis: steady_cpu_millis,
                    ..init_limits
                };
                // (At 1,769 MB and more the share is the init's quota already: nothing to
                // write before the event goes.)
                if steady.cfs_quota_us() != init_limits.cfs_quota_us()
                    && let Err(e) = self.inner.opts.cgroups.set_cpu(&env.id, &steady)
                {
                    tracing::warn!(env = %env.id, error = %e, "lowering the CPU quota after init");
                }
                Ok(Created::Ready(env))
            }
            Some(RuntimeEvent::InitError { body, .. }) => {
                self.destroy(&env);
                Ok(Created::Failed(
                    self.failed_init(req, request_id, body, started, Some(&env)),
                    stratus_aws::Outcome::FunctionError,
                ))
            }
            _ => {
                // The runtime died during init.
                let ended = env
                    .exit
                    .clone()
                    .wait_for(Option::is_some)
                    .await
                    .ok()
                    .and_then(|e| e.clone());
                let payload = crash_error(request_id, ended.as_ref());
                let outcome = if ended.as_ref().is_some_and(|e| e.usage.oom_kills > 0) {
                    stratus_aws::Outcome::OutOfMemory
                } else {
                    stratus_aws::Outcome::FunctionError
                };
                Ok(Created::Failed(
                    self.failed_init(req, request_id, payload, started, Some(&env)),
                    outcome,
                ))
            }
        }
    }

    /// Frames the log of an invocation whose environment never became ready.
    fn failed_init(
        &self,
        req: &InvokeRequest,
        request_id: &str,
        payload: Bytes,
        started: Instant,
        env: Option<&Env>,
    ) -> InvokeResult {
        let init = started.elapsed();
        let mut tail = Vec::new();
        if let Some(env) = env {
            env.output.pump_to_now();
            let c = &req.config;
            env.output
                .platform_line(&report::start(request_id, &c.version));
            env.output.platform_line(&report::end(request_id));
            env.output
                .platform_line(&report::init_failed(request_id, init, c.memory_size));
            tail = env.output.end_invocation();
        }
        InvokeResult {
            request_id: request_id.into(),
            payload,
            function_error: Some("Unhandled".into()),
            executed_version: req.config.version.clone(),
            log_tail: tail,
            duration: init,
            init_duration: Some(init),
            max_memory_used_mb: 0,
        }
    }

    async fn run(
        &self,
        env: Arc<Env>,
        req: &InvokeRequest,
        request_id: String,
        init: Option<Duration>,
    ) -> InvokeResult {
        let c = &req.config;
        // What init (or a previous invocation's stragglers) printed comes before START.
        env.output.pump();
        env.output
            .platform_line_deferred(&report::start(&request_id, &c.version));
        if let Some(m) = &env.peak {
            m.reset();
        }
        let timeout = Duration::from_secs(u64::from(c.timeout));
        let started = Instant::now();
        let start_ms = now_ms();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: req.payload.clone(),
            deadline_ms: start_ms + timeout.as_millis() as u64,
            invoked_function_arn: req.invoked_arn.clone(),
            trace_id: trace_id(),
            client_context: req.client_context.clone(),
            cognito_identity: None,
        };
        let outcome = if env.queue.send(invocation).await.is_err() {
            Outcome::Crashed(env.exited())
        } else {
            let mut exit = env.exit.clone();
            let mut events = env.events.lock().await;
            let deadline = tokio::time::Instant::from_std(started + timeout);
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(RuntimeEvent::Response { request_id: id, body }) if id == request_id => break Outcome::Response(body),
                        Some(RuntimeEvent::Error { request_id: id, body, .. }) if id == request_id => break Outcome::FunctionError(body),
                        Some(RuntimeEvent::ResponseTooLarge { request_id: id, size }) if id == request_id => break Outcome::TooLarge(size),
                        Some(_) => continue,
                        None => break Outcome::Crashed(env.exited()),
                    },
                    res = exit.wait_for(Option::is_some) => {
                        break Outcome::Crashed(res.ok().and_then(|e| e.clone()));
                    }
                    _ = tokio::time::sleep_until(deadline) => break Outcome::Timeout,
                }
            }
        };
        let duration = started.elapsed();
        let mut keep = true;
        let mut metered = match outcome {
            Outcome::Response(_) => stratus_aws::Outcome::Success,
            Outcome::Timeout => stratus_aws::Outcome::Timeout,
            _ => stratus_aws::Outcome::FunctionError,
        };
        let (payload, function_error) = match outcome {
            Outcome::Response(body) => (body, None),
            Outcome::FunctionError(body) => (body, Some("Unhandled")),
            Outcome::TooLarge(size) => (
                error_json(
                    "Function.ResponseSizeTooLarge",
                    &format!(
                        "Response payload size ({size} bytes) exceeded maximum allowed payload size ({} bytes).",
                        crate::endpoint::MAX_RESPONSE_BYTES
                    ),
                ),
                Some("Unhandled"),
            ),
            Outcome::Timeout => {
                keep = false;
                self.destroy(&env);
                let secs = timeout.as_secs_f64();
                env.output
                    .platform_line(&report::timed_out(&request_id, secs));
                (
                    error_json(
                        "Sandbox.Timedout",
                        &format!(
                            "RequestId: {request_id} Error: Task timed out after {secs:.2} seconds"
                        ),
                    ),
                    Some("Unhandled"),
                )
            }
            Outcome::Crashed(exit) => {
                keep = false;
                // The helper's report carries the cgroup's final figures.
                let exit = match exit {
                    Some(e) => Some(e),
                    None => env
                        .exit
                        .clone()
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|e| e.clone()),
                };
                if exit.as_ref().is_some_and(|e| e.usage.oom_kills > 0) {
                    metered = stratus_aws::Outcome::OutOfMemory;
                }
                (crash_error(&request_id, exit.as_ref()), Some("Unhandled"))
            }
        };
        // Whatever the function wrote before answering is in the pipe by now (and after
        // an exit, read straight from the pipe: tokio may not know of it yet).
        if keep {
            env.output.pump();
        } else {
            env.output.pump_to_now();
        }
        let peak = match (env.exited(), &env.peak) {
            (Some(e), _) => e.usage.memory_peak_bytes,
            (None, Some(m)) => m.read(),
            (None, None) => self.inner.opts.cgroups.usage(&env.id).memory_peak_bytes,
        };
        let max_used_mb = peak.div_ceil(1024 * 1024);
        let report = report::report(&request_id, duration, init, c.memory_size, max_used_mb);
        env.output
            .platform_lines(&[&report::end(&request_id), &report]);
        let log_tail = env.output.end_invocation();
        if keep && env.is_retired() {
            env.release_memory();
            self.destroy(&env);
        } else if keep && env.exited().is_none() {
            if let Ok(mut t) = env.last_used.lock() {
                *t = Instant::now();
            }
            self.lock_idle()
                .entry(env.key.clone())
                .or_default()
                .push(env.clone());
        }
        self.inner.opts.meter.record(stratus_aws::InvocationRecord {
            request_id: request_id.clone(),
            function: c.name.clone(),
            version: c.version.clone(),
            start_ms: start_ms.saturating_sub(init.map_or(0, |i| i.as_millis() as u64)),
            duration,
            init,
            billed_ms: stratus_aws::usage::billed_ms(duration, init),
            memory_mb: c.memory_size,
            max_memory_used_mb: max_used_mb,
            outcome: metered,
        });
        InvokeResult {
            request_id,
            payload,
            function_error: function_error.map(str::to_owned),
            executed_version: c.version.clone(),
            log_tail,
            duration,
            init_duration: init,
            max_memory_used_mb: max_used_mb,
        }
    }
}

/// Runs futures concurrently on the current task and returns their outputs in order.
async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

//! From a function's configuration to the sandbox that runs it: the program to start for
//! its runtime, the directories it sees, and Lambda's standard environment.

use std::path::{Path, PathBuf};

use stratus_lambda::{FunctionConfig, RuntimeCatalog, RuntimeInfo, RuntimeKind};
use stratus_sandbox::{Bind, Limits, SandboxSpec, Zygote};

/// Stratus's bootstraps for managed runtimes, written to the runtime directory at start-up.
/// The Python runtime is installed as a module (`stratus_bootstrap.py`) started by a
/// two-line `bootstrap.py`: a module can be loaded precompiled, a script is compiled on
/// every start (10 ms of a 20 ms cold start here).
pub const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python/bootstrap.py");
const PYTHON_LAUNCHER: &str = "\
# Stratus's Python runtime: the module next to this file, loaded precompiled.
import stratus_bootstrap

stratus_bootstrap.main()
";
const PYTHON_MODULE: &str = "stratus_bootstrap.py";
pub const NODE_BOOTSTRAP: &str = include_str!("../runtimes/node/bootstrap.js");

/// The port, inside every environment's own network namespace, of its Runtime API (and of
/// the Stratus API, for SDK calls from the function).
pub const ENV_PORT: u16 = 9001;
/// CPU (thousandths) an environment gets during init.
pub const INIT_CPU_MILLIS: u64 = 1000;
/// The memory that buys one full vCPU on Lambda.
pub const MB_PER_VCPU: u64 = 1769;
/// Lambda's limit of processes and threads per environment.
pub const PIDS_MAX: u64 = 1024;

/// Where things are, and who the function is.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    pub region: String,
    /// Host directory with `python/bootstrap.py` and `node/bootstrap.js`.
    pub runtime_dir: PathBuf,
    /// Credentials the function's SDK uses to call Stratus when no session of its role can
    /// be had (no [`LaunchContext::roles`]).
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Sessions of execution roles: a function's credentials are a session of its role,
    /// named after the function, so that it can do exactly what its role allows.
    pub roles: Option<std::sync::Arc<dyn stratus_aws::RoleSessions>>,
}

/// Writes the managed runtimes' bootstraps under `dir`, and compiles the Python one for
/// each of `pythons` (interpreter paths) into its `__pycache__` (checked by source hash, so
/// a stale file is never used). A failed compilation only costs start-up time.
pub fn install_bootstraps(dir: &Path, pythons: &[PathBuf]) -> std::io::Result<()> {
    for (sub, file, text) in [
        ("python", "bootstrap.py", PYTHON_LAUNCHER),
        ("python", PYTHON_MODULE, PYTHON_BOOTSTRAP),
        ("node", "bootstrap.js", NODE_BOOTSTRAP),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let p = d.join(file);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
            let tmp = d.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &p)?;
        }
    }
    let module = dir.join("python").join(PYTHON_MODULE);
    for python in pythons {
        let compiled = std::process::Command::new(python)
            .args([
                "-c",
                "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True, \
                 invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)",
            ])
            .arg(&module)
            .stdin(std::process::Stdio::null())
            .output();
        match compiled {
            Ok(out) if out.status.success() => {}
            Ok(out) => tracing::warn!(
                python = %python.display(),
                error = %String::from_utf8_lossy(&out.stderr).trim(),
                "could not precompile the Python runtime (its cold starts compile it)"
            ),
            Err(e) => tracing::warn!(python = %python.display(), error = %e,
                "could not precompile the Python runtime (its cold starts compile it)"),
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("runtime {0} is not offered by this host")]
    UnknownRuntime(String),
    /// AWS's words when a function's execution role cannot be assumed.
    #[error("The role defined for the function cannot be assumed by Lambda: {0}")]
    Role(String),
}

/// What the invoker needs to know besides the spec.
pub struct Launch {
    /// The sandbox to ask for; its CPU is the init phase's ([`init_cpu_millis`]).
    pub spec: SandboxSpec,
    /// The CPU once init is over ([`cpu_millis_for_memory`]): the invoker lowers the
    /// sandbox's quota to it at the runtime's first `/next`.
    pub steady_cpu_millis: u64,
    pub log_group: String,
    pub log_stream: String,
}

/// Lambda's CPU share for a memory size, in thousandths of a CPU: 1,769 MB buys one vCPU.
pub fn cpu_millis_for_memory(memory_mb: u64) -> u64 {
    memory_mb * 1000 / MB_PER_VCPU
}

/// The CPU during init: at least one full vCPU, as Lambda boosts its init phase, or the
/// memory-proportional share where that is more.
pub fn init_cpu_millis(memory_mb: u64) -> u64 {
    INIT_CPU_MILLIS.max(cpu_millis_for_memory(memory_mb))
}

pub fn log_stream_name(version: &str, env_id: &str) -> String {
    let today = time::OffsetDateTime::now_utc().date();
    // Only the one-letter prefix: the id itself may start with an `e` too.
    let id = env_id.strip_prefix('e').unwrap_or(env_id);
    format!(
        "{:04}/{:02}/{:02}/[{version}]{id}",
        today.year(),
        u8::from(today.month()),
        today.day()
    )
}

/// The program a runtime starts, and the binds it needs besides the function's code.
fn program(runtime: &RuntimeInfo, ctx: &LaunchContext) -> (Vec<String>, Vec<Bind>) {
    let (sub, script) = match runtime.kind {
        RuntimeKind::Provided => return (vec!["/var/task/bootstrap".into()], Vec::new()),
        RuntimeKind::Python => ("python", "/var/runtime/bootstrap.py"),
        RuntimeKind::Node => ("node", "/var/runtime/bootstrap.js"),
    };
    let mut binds = vec![Bind {
        source: ctx.runtime_dir.join(sub),
        target: PathBuf::from("/var/runtime"),
    }];
    let interp = runtime.interpreter.clone().unwrap_or_default();
    // Interpreters outside /usr (a version manager's) bring their prefix along.
    if !interp.starts_with("/usr")
        && let Some(prefix) = interp.parent().and_then(Path::parent)
    {
        binds.push(Bind {
            source: prefix.to_owned(),
            target: prefix.to_owned(),
        });
    }
    (
        vec![interp.to_string_lossy().into_owned(), script.into()],
        binds,
    )
}

/// The variables every function's environment starts from, as on Lambda (the function's
/// own variables may override them).
fn default_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH".into(),
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
                .into(),
        ),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
    ]
}

/// Set in a Python zygote's environment: the runtime waits for its spec on this descriptor
/// before it loads the function (see `stratus_bootstrap.await_claim`).
const ZYGOTE_VAR: &str = "_STRATUS_ZYGOTE_FD";

/// Zygotes for the host's Python runtimes (one per interpreter): the interpreter started
/// with the runtime loaded, in the environment a function gets by default. Functions whose
/// variables change what Python reads only at start-up (`PYTHON*`, locale, the dynamic
/// linker's and the allocator's variables, `TZ`, `HOME` for the user's site directory)
/// start their own interpreter instead.
pub fn zygotes(catalog: &RuntimeCatalog, ctx: &LaunchContext) -> Vec<Zygote> {
    let mut out: Vec<Zygote> = Vec::new();
    for id in catalog.ids() {
        let Some(runtime) = catalog.get(id).filter(|r| r.kind == RuntimeKind::Python) else {
            continue;
        };
        let (argv, binds) = program(runtime, ctx);
        if out.iter().any(|z| z.argv == argv) {
            continue; // two runtime names for one interpreter
        }
        let mut env: Vec<String> = default_env()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("{ZYGOTE_VAR}={}", Zygote::SPEC_FD));
        out.push(Zygote {
            argv,
            env,
            binds,
            fixed_env: [
                "PYTHON*",
                "LANG",
                "LANGUAGE",
                "LC_*",
                "LD_*",
                "TZ",
                "MALLOC_*",
                "GLIBC_TUNABLES",
                "HOME",
                "LOCPATH",
                "GCONV_PATH",
            ]
            .map(String::from)
            .to_vec(),
        });
    }
    out
}

pub fn plan(
    env_id: &str,
    config: &FunctionConfig,
    code_path: &Path,
    catalog: &RuntimeCatalog,
    ctx: &LaunchContext,
    initialization_type: &str,
) -> Result<Launch, LaunchError> {
    let runtime = catalog
        .get(&config.runtime)
        .ok_or_else(|| LaunchError::UnknownRuntime(config.runtime.clone()))?;
    let mut binds = vec![Bind {
        source: code_path.to_owned(),
        target: PathBuf::from("/var/task"),
    }];
    // The function's layers, extracted in order into one directory when the function was
    // prepared, are its `/opt` (read-only, as every bind). The runtimes look there as
    // Lambda's do: the Python bootstrap puts `/opt/python` (and its site-packages) on
    // `sys.path` when it loads the function, so a zygote started before the function was
    // known finds them too; Node's bootstrap sets `NODE_PATH`; `PATH` and
    // `LD_LIBRARY_PATH` name `/opt/bin` and `/opt/lib` by default.
    if let Some(opt) = config.layers_path(code_path) {
        binds.push(Bind {
            source: opt,
            target: PathBuf::from("/opt"),
        });
    }
    let (argv, runtime_binds) = program(runtime, ctx);
    binds.extend(runtime_binds);
    let log_group = config.log_group.clone();
    let log_stream = log_stream_name(&config.version, env_id);
    let endpoint = format!("127.0.0.1:{ENV_PORT}");
    let mut env = default_env();
    // The function's own variables may override the unreserved defaults above.
    if let Some(vars) = &config.environment {
        for (k, v) in vars {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
    }
    let creds = match &ctx.roles {
        Some(roles) => roles
            .credentials(&config.role, &config.name)
            .ok_or_else(|| LaunchError::Role(config.role.clone()))?,
        None => stratus_aws::TemporaryCredentials {
            access_key_id: ctx.access_key_id.clone(),
            secret_access_key: ctx.secret_access_key.clone(),
            session_token: ctx.session_token.clone(),
        },
    };
    let mut reserved: Vec<(&str, String)> = vec![
        ("_HANDLER", config.handler.clone()),
        ("AWS_REGION", ctx.region.clone()),
        ("AWS_DEFAULT_REGION", ctx.region.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_size.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", config.version.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", initialization_type.into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.clone()),
        ("AWS_LAMBDA_RUNTIME_API", endpoint.clone()),
        ("AWS_ENDPOINT_URL", format!("http://{endpoint}")),
        ("AWS_ACCESS_KEY_ID", creds.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key),
        ("AWS_SESSION_TOKEN", creds.session_token),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
    ];
    if runtime.kind != RuntimeKind::Provided {
        reserved.push((
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", config.runtime),
        ));
    }
    for (k, v) in reserved {
        env.retain(|(ek, _)| ek != k);
        env.push((k.into(), v));
    }
    Ok(Launch {
        spec: SandboxSpec {
            id: env_id.into(),
            argv,
            env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: "/var/task".into(),
            binds,
            tmp_mb: u64::from(config.ephemeral_storage),
            // Init runs with at least one full vCPU, as Lambda boosts its init phase; the
            // invoker lowers the quota to the memory-proportional share once init is over.
            limits: Limits {
                memory_mb: u64::from(config.memory_size),
                pids_max: PIDS_MAX,
                cpu_millis: init_cpu_millis(u64::from(config.memory_size)),
            },
            hostname: "stratus".into(),
        },
        steady_cpu_millis: cpu_millis_for_memory(u64::from(config.memory_size)),
        log_group,
        log_stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_follows_memory_like_lambda() {
        let quota = |cpu_millis| {
            Limits {
                memory_mb: 128,
                pids_max: PIDS_MAX,
                cpu_millis,
            }
            .cfs_quota_us()
        };
        assert_eq!(quota(cpu_millis_for_memory(1769)), 100_000);
        assert_eq!(quota(cpu_millis_for_memory(3538)), 200_000);
        assert_eq!(quota(cpu_millis_for_memory(128)), 7_200);
        assert_eq!(quota(cpu_millis_for_memory(1)), 1000);
    }

    #[test]
    fn init_gets_a_full_cpu_or_the_memory_share_if_larger() {
        assert_eq!(init_cpu_millis(128), 1000);
        assert_eq!(init_cpu_millis(1769), 1000);
        assert_eq!(init_cpu_millis(3538), 2000);
        assert_eq!(init_cpu_millis(10_240), 5788);
    }

    #[test]
    fn the_python_runtime_is_installed_as_a_precompiled_module() {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            return; // nothing to compile with on this host
        }
        let dir = tempfile::tempdir().expect("tempdir");
        install_bootstraps(dir.path(), &[python.to_owned()]).expect("install");
        let py = dir.path().join("python");
        let launcher = std::fs::read_to_string(py.join("bootstrap.py")).expect("launcher");
        assert!(launcher.contains("import stratus_bootstrap"), "{launcher}");
        assert_eq!(
            std::fs::read_to_string(py.join(PYTHON_MODULE)).expect("module"),
            PYTHON_BOOTSTRAP
        );
        let cached: Vec<String> = std::fs::read_dir(py.join("__pycache__"))
            .expect("__pycache__")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            cached
                .iter()
                .any(|f| f.starts_with("stratus_bootstrap.") && f.ends_with(".pyc")),
            "{cached:?}"
        );
        // A second start finds everything in place and is just as happy.
        install_bootstraps(dir.path(), &[python.to_owned()]).expect("reinstall");
    }

    #[test]
    fn layers_are_bound_read_only_at_opt_from_beside_the_code() {
        let layer = |arn: &str, digest: char| stratus_lambda::FunctionLayer {
            arn: arn.into(),
            code_size: 1,
            unzipped_size: 1,
            digest: digest.to_string().repeat(64),
        };
        let mut config: FunctionConfig = serde_json::from_value(serde_json::json!({
            "name": "f", "version": "$LATEST", "package_type": "Zip",
            "runtime": "provided.al2", "handler": "h", "role": "r", "description": "",
            "timeout": 3, "memory_size": 128, "ephemeral_storage": 512,
            "architectures": ["x86_64"], "environment": null, "tracing_mode": "PassThrough",
            "dead_letter_target": null, "log_format": "Text", "log_group": "/aws/lambda/f",
            "code_digest": "0".repeat(64), "code_sha256": "", "code_size": 1,
            "last_modified_ms": 0, "revision_id": "r", "state": "Active",
            "state_reason": null, "state_reason_code": null, "last_update_status": null,
            "last_update_status_reason": null, "last_update_status_reason_code": null,
        }))
        .expect("config");
        let catalog = RuntimeCatalog::from_runtimes(vec![RuntimeInfo {
            id: "provided.al2".into(),
            kind: RuntimeKind::Provided,
            interpreter: None,
        }]);
        let ctx = LaunchContext {
            region: "us-east-1".into(),
            runtime_dir: PathBuf::from("/rt"),
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            roles: None,
        };
        let code = Path::new("/data/code").join(&config.code_digest);
        let opt_binds = |config: &FunctionConfig| {
            let plan = plan("e1", config, &code, &catalog, &ctx, "on-demand").expect("plan");
            plan.spec
                .binds
                .into_iter()
                .filter(|b| b.target == Path::new("/opt"))
                .map(|b| b.source)
                .collect::<Vec<_>>()
        };
        assert!(opt_binds(&config).is_empty());
        config.layers = vec![layer("l:1", 'a'), layer("m:1", 'b')];
        let ab = opt_binds(&config);
        assert_eq!(ab.len(), 1);
        assert_eq!(ab[0].parent(), Some(Path::new("/data/code")));
        // Another order is another directory: later layers win, so order matters.
        config.layers.reverse();
        assert_ne!(opt_binds(&config), ab);
    }

    #[test]
    fn log_stream_keeps_the_whole_environment_id() {
        // Ids are `e` + 32 hex digits, and the hex may itself start with `e`s.
        let id = "ee0e0000000000000000000000000000";
        let stream = log_stream_name("$LATEST", &format!("e{id}"));
        assert!(stream.ends_with(&format!("/[$LATEST]{id}")), "{stream}");
        assert_eq!(stream.len(), "2026/11/23/[$LATEST]".len() + 32);
    }
}

//! Configuration: one struct, read from an optional TOML file, then overridden by
//! `STRATUS_*` environment variables and command-line flags (flags win).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `stratus server` can be told. Every field has a default, so an empty file
/// (or none) is a valid configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the AWS-compatible API listens on. Default `127.0.0.1:4566`, the port AWS
    /// tooling users already point at local clouds.
    pub listen: SocketAddr,
    /// Where all state lives: the metadata database, code packages, credentials.
    /// Default: `$STRATUS_DATA_DIR`, else `$XDG_DATA_HOME/stratus`, else `~/.local/share/stratus`.
    pub data_dir: PathBuf,
    /// The AWS region this server answers as. Default `us-east-1`.
    pub region: String,
    /// The 12-digit account id in every ARN. Default `000000000000`.
    pub account_id: String,
    /// Fixed root credentials; when unset, a key pair is generated on first start and kept
    /// in the data directory.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Account-level concurrent executions limit reported by GetAccountSettings. Default 1000.
    pub concurrent_executions: u32,
    /// `tracing` filter for the server's own log, e.g. `info` or `stratus=debug`. Default `info`.
    pub log: String,
    /// Seconds an idle execution environment is kept for reuse. Default 600.
    pub keep_alive: u64,
    /// Create execution environments (needs root, namespaces and cgroups). Default true;
    /// when false or impossible, Invoke answers a clear error.
    pub sandbox: bool,
    /// Where the cgroup file system is mounted. Default `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// The cgroup, under each hierarchy, that holds this server's environments. Default
    /// `stratus`; give servers sharing a host different names.
    pub cgroup_parent: String,
    /// Host uid and gid that functions run as (mapped to 993:990 inside, as on Lambda).
    /// Each execution environment has a host uid of its own, `sandbox_uid` plus its slot
    /// (0 to 16383, reused once an environment ends), so that no function can spend the
    /// kernel's per-user limits (inotify, processes...) of another: the range
    /// `sandbox_uid..sandbox_uid + 16384` must be unprivileged ids that own nothing on the
    /// host. The gid is shared. Default 100993 / 100990.
    pub sandbox_uid: u32,
    pub sandbox_gid: u32,
    /// The most memory (MiB) live execution environments may claim together, counted as
    /// the sum of their functions' MemorySize. Default: 75% of the host's RAM.
    pub memory_budget_mb: Option<u64>,
    /// Seconds before the first retry of an asynchronous invocation that failed (the second
    /// waits twice as long). Default 60, as on Lambda.
    pub async_retry_base: u64,
    /// Give functions outside network access, as Lambda does (a veth pair per sandbox, NAT
    /// on the host, host addresses unreachable). Default true; false means loopback only.
    pub sandbox_network: bool,
    /// Set the host's `/sys/kernel/rcu_expedited` to 1 at start. Attaching a new sandbox
    /// to its cgroups otherwise waits for a normal RCU grace period (about 12 ms here, most
    /// of a cold start). Host-wide; default true.
    pub expedite_rcu: bool,
    /// Blank sandboxes (namespaces, network and common mounts, no function) kept ready so a
    /// cold start only adds the function's part. They hold no code and count against no
    /// limit; each costs about 1.4 MiB. Default 4; 0 creates every sandbox on request.
    pub sandbox_pool: usize,
    /// Blanks kept ready per Python interpreter with the interpreter already started and
    /// Stratus's runtime loaded (a "zygote"), once a function of that runtime has started:
    /// its cold starts then skip the interpreter's start-up. Each costs about 10 MiB and
    /// 15 ms of otherwise idle CPU to make. Default 2; 0 turns zygotes off.
    pub zygote_pool: usize,
    /// Threads serving HTTP: the AWS API and every environment's Runtime API. Default: half
    /// the host's CPUs, at least 1 (the rest is the functions'). With one, the server runs
    /// on a single-threaded runtime: a multi-threaded one wakes a sleeping thread to look
    /// for work several times per invoke (on 2 CPUs, one thread took 10–25 % less server CPU
    /// per warm invoke and about 10 % less latency).
    pub server_threads: Option<usize>,
    /// Test mode, for conformance suites: `POST /_stratus/reset` (and moto's
    /// `/moto-api/reset`) deletes every resource of every service. Never on by default.
    pub test_mode: bool,
    /// The most a log group keeps on disk, in MB; past it the group's oldest events are
    /// dropped, so a function printing without end cannot fill the disk. Default 1024.
    pub log_group_max_mb: u64,
    /// Client connections open at once; more wait until one closes. Default 4096.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, and the longest an idle
    /// keep-alive connection is kept. Default 30.
    pub header_timeout: u64,
    /// Seconds a client may pause while sending a request body before it is cut off.
    /// Default 30.
    pub body_timeout: u64,
    /// Megabytes that request bodies being read (and held until answered) may take at
    /// once; past it, bodies wait up to `body_timeout`, then are refused with a throttling
    /// error. Default 256.
    pub body_memory_mb: u64,
    /// Dollars per million requests, for the estimated AWS price in `stratus usage`.
    /// Default 0.20 (public x86 Lambda price).
    pub price_per_million_requests: f64,
    /// Dollars per GB-second of billed duration, for the same estimate. Default
    /// 0.0000166667 (public x86 Lambda price, first tier).
    pub price_per_gb_second: f64,
    /// Days an invocation's usage record is kept in `<data-dir>/usage.db`. Default 90.
    pub usage_retention_days: u32,
    /// The most usage records kept (about 200 bytes each); the oldest go first. Default
    /// 5,000,000.
    pub usage_max_rows: u64,
    /// Start on a store found damaged (a cut-short WAL, an older copy of the database, a
    /// corrupt file) instead of refusing to. Default false; meant for one start after the
    /// operator has decided to keep what is left.
    pub accept_damaged_store: bool,
    /// A function's `/tmp` on disk, at its EphemeralStorage size (an ext4 image on a loop
    /// device under `<data-dir>/sandbox/ephemeral`), as on Lambda. Default true; false, or a
    /// host without loop devices or e2fsprogs: a tmpfs, charged to the function's memory.
    pub tmp_on_disk: bool,
    /// A function's `Role` must name an IAM role of this server that trusts
    /// `lambda.amazonaws.com`, as on AWS. Default true; false accepts any well-formed role
    /// ARN: for test suites that fake IAM, such as moto's. Either way a function whose role
    /// does not exist (or cannot be assumed) runs, with credentials that can do nothing.
    pub check_execution_roles: bool,
}

pub fn default_data_dir() -> PathBuf {
    default_data_dir_from(|k| std::env::var_os(k))
}

/// [`default_data_dir`] over any environment (`var` looks a variable up), so callers that
/// resolve settings from an environment map, like the CLI, find the same directory.
pub fn default_data_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    if let Some(xdg) = var("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("stratus");
    }
    if let Some(home) = var("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/stratus");
    }
    PathBuf::from("stratus-data")
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            data_dir: default_data_dir(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            access_key_id: None,
            secret_access_key: None,
            concurrent_executions: stratus_lambda::DEFAULT_CONCURRENT_EXECUTIONS,
            log: "info".into(),
            keep_alive: 600,
            sandbox: true,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "stratus".into(),
            sandbox_uid: 100_993,
            sandbox_gid: 100_990,
            memory_budget_mb: None,
            async_retry_base: 60,
            sandbox_network: true,
            expedite_rcu: true,
            sandbox_pool: 4,
            zygote_pool: 2,
            server_threads: None,
            test_mode: false,
            log_group_max_mb: 1024,
            max_connections: 4096,
            header_timeout: 30,
            body_timeout: 30,
            body_memory_mb: 256,
            price_per_million_requests: 0.20,
            price_per_gb_second: 0.000_016_666_7,
            usage_retention_days: 90,
            usage_max_rows: 5_000_000,
            accept_damaged_store: false,
            tmp_on_disk: true,
            check_execution_roles: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

/// How many host uids environments use from `sandbox_uid` on (one per sandbox slot).
const SANDBOX_UIDS: u32 = stratus_sandbox::net::SLOTS;

/// The share of host memory execution environments may claim by default.
const DEFAULT_MEMORY_BUDGET_PERCENT: u64 = 75;

impl Config {
    /// The memory budget in MiB: configured, or a share of `MemTotal`.
    pub fn memory_budget_mb(&self) -> u64 {
        self.memory_budget_mb.unwrap_or_else(|| {
            let total_kb = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|m| {
                    m.lines()
                        .find(|l| l.starts_with("MemTotal:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .unwrap_or(4 * 1024 * 1024);
            total_kb / 1024 * DEFAULT_MEMORY_BUDGET_PERCENT / 100
        })
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Threads serving HTTP: configured, or half the host's CPUs (at least 1).
    pub fn server_threads(&self) -> usize {
        self.server_threads.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cpus / 2).max(1)
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, price) in [
            (
                "price_per_million_requests",
                self.price_per_million_requests,
            ),
            ("price_per_gb_second", self.price_per_gb_second),
        ] {
            if !price.is_finite() || price < 0.0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be a non-negative number, got {price}"
                )));
            }
        }
        if self.body_memory_mb == 0 {
            return Err(ConfigError::Invalid(
                "body_memory_mb must be at least 1".into(),
            ));
        }
        // Each environment runs as `sandbox_uid + slot` (slot < 16384): never root, and
        // below the invalid uid 4294967295.
        if self.sandbox_uid == 0 || self.sandbox_uid > u32::MAX - 1 - SANDBOX_UIDS {
            return Err(ConfigError::Invalid(format!(
                "sandbox_uid must be between 1 and {}: environments run as sandbox_uid to \
                 sandbox_uid + {}",
                u32::MAX - 1 - SANDBOX_UIDS,
                SANDBOX_UIDS - 1
            )));
        }
        if self.server_threads == Some(0) {
            return Err(ConfigError::Invalid(
                "server_threads must be at least 1".into(),
            ));
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid(format!(
                "account_id must be 12 digits, got {:?}",
                self.account_id
            )));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::Invalid(format!(
                "region {:?} is not a region name",
                self.region
            )));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(ConfigError::Invalid(
                "access_key_id and secret_access_key must be set together".into(),
            ));
        }
        let parent_ok = !matches!(self.cgroup_parent.as_str(), "" | "." | "..")
            && self
                .cgroup_parent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !parent_ok {
            return Err(ConfigError::Invalid(format!(
                "cgroup_parent {:?} must be a plain name",
                self.cgroup_parent
            )));
        }
        if self.cgroup_parent == stratus_sandbox::cgroup::V2_HOST_LEAF {
            return Err(ConfigError::Invalid(format!(
                "cgroup_parent {:?} is where Stratus may move the processes it finds above its \
                 cgroups (cgroup v2): choose another name",
                self.cgroup_parent
            )));
        }
        if self.concurrent_executions == 0 {
            return Err(ConfigError::Invalid(
                "concurrent_executions must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_default() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c, Config::default());
        c.validate().unwrap();
    }

    #[test]
    fn file_values_are_read_and_unknown_keys_refused() {
        let c: Config = toml::from_str(
            "listen = \"0.0.0.0:9000\"\nregion = \"eu-west-1\"\naccount_id = \"123456789012\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.region, "eu-west-1");
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }

    #[test]
    fn validation_catches_bad_values() {
        let bad_account = Config {
            account_id: "12".into(),
            ..Config::default()
        };
        assert!(bad_account.validate().is_err());
        let half_key = Config {
            access_key_id: Some("AKIA".into()),
            ..Config::default()
        };
        assert!(half_key.validate().is_err());
        let no_threads = Config {
            server_threads: Some(0),
            ..Config::default()
        };
        assert!(no_threads.validate().is_err());
        for uid in [0, u32::MAX - SANDBOX_UIDS] {
            let c = Config {
                sandbox_uid: uid,
                ..Config::default()
            };
            assert!(c.validate().is_err(), "sandbox_uid {uid} accepted");
        }
        for parent in ["", ".", "..", "a/b", "stratus-host"] {
            let c = Config {
                cgroup_parent: parent.into(),
                ..Config::default()
            };
            assert!(c.validate().is_err(), "cgroup_parent {parent:?} accepted");
        }
        let fine = Config {
            cgroup_parent: "stratus-e2e.1_x".into(),
            ..Config::default()
        };
        fine.validate().unwrap();
    }

    #[test]
    fn server_threads_default_to_half_the_cpus() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(Config::default().server_threads(), (cpus / 2).max(1));
        let c: Config = toml::from_str("server_threads = 3").unwrap();
        assert_eq!(c.server_threads(), 3);
    }
}

//! `stratus`: parse arguments, load configuration, install logging, run the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stratus::Config;

#[derive(Parser)]
#[command(
    name = "stratus",
    version,
    about = "A self-hosted serverless cloud in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the AWS-compatible API and every service, in one process.
    Server(Box<ServerArgs>),
    /// Invoke a function: its result on stdout, its REPORT line on stderr.
    Invoke(Box<stratus::cli::invoke::InvokeArgs>),
    /// Print a function's logs (CloudWatch Logs group /aws/lambda/<function>).
    Logs(Box<stratus::cli::logs::LogsArgs>),
    /// Usage per function (invocations, errors, throttles, cold starts, GB-seconds,
    /// p50/p99 duration, estimated AWS price) from a running server.
    Usage(stratus::usage_cmd::UsageArgs),
    /// Internal: the single-threaded process that creates sandboxes for the server.
    #[command(hide = true)]
    SandboxHelper {
        /// The descriptor of the server's socket.
        #[arg(long)]
        fd: i32,
        /// `tracing` filter for the helper's log lines (the server passes its own).
        #[arg(long, default_value = "warn")]
        log: String,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// TOML configuration file; flags and STRATUS_* variables override it.
    #[arg(long, env = "STRATUS_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:4566].
    #[arg(long, env = "STRATUS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory [default: $XDG_DATA_HOME/stratus or ~/.local/share/stratus].
    #[arg(long, env = "STRATUS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Region this server answers as [default: us-east-1].
    #[arg(long, env = "STRATUS_REGION")]
    region: Option<String>,
    /// Account id used in ARNs [default: 000000000000].
    #[arg(long, env = "STRATUS_ACCOUNT_ID")]
    account_id: Option<String>,
    /// Root access key id (with --secret-access-key); generated when unset.
    #[arg(long, env = "STRATUS_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// Root secret access key.
    #[arg(long, env = "STRATUS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// Log filter for the server's own log [default: info].
    #[arg(long, env = "STRATUS_LOG")]
    log: Option<String>,
    /// Seconds an idle execution environment is kept for reuse [default: 600].
    #[arg(long, env = "STRATUS_KEEP_ALIVE")]
    keep_alive: Option<u64>,
    /// Test mode for conformance suites: enables `POST /_stratus/reset`, which deletes
    /// every resource. Never use it on a server that holds anything you want to keep.
    #[arg(
        long,
        env = "STRATUS_TEST_MODE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    test_mode: bool,
    /// Start even if the store is damaged (lost commits, a corrupt database), running on
    /// what is left; without it such a store is refused with what is wrong.
    #[arg(
        long,
        env = "STRATUS_ACCEPT_DAMAGED_STORE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    accept_damaged_store: bool,
}

impl ServerArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.data_dir {
            c.data_dir = v;
        }
        if let Some(v) = self.region {
            c.region = v;
        }
        if let Some(v) = self.account_id {
            c.account_id = v;
        }
        if self.access_key_id.is_some() || self.secret_access_key.is_some() {
            c.access_key_id = self.access_key_id;
            c.secret_access_key = self.secret_access_key;
        }
        if let Some(v) = self.log {
            c.log = v;
        }
        if let Some(v) = self.keep_alive {
            c.keep_alive = v;
        }
        if self.test_mode {
            c.test_mode = true;
        }
        if self.accept_damaged_store {
            c.accept_damaged_store = true;
        }
        c.validate()?;
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        // Before any runtime or thread exists: the helper must stay single-threaded.
        Command::SandboxHelper { fd, log } => {
            // The fmt subscriber writes from the calling thread: no thread is started.
            init_log(&log)?;
            Ok(stratus_sandbox::helper::main(fd)?)
        }
        Command::Invoke(args) => std::process::exit(stratus::cli::invoke::main(*args)),
        Command::Logs(args) => std::process::exit(stratus::cli::logs::main(*args)),
        Command::Usage(args) => std::process::exit(stratus::usage_cmd::run(args)),
        Command::Server(args) => {
            let config = (*args).into_config()?;
            init_log(&config.log)?;
            let runtime = match config.server_threads() {
                1 => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
                n => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .enable_all()
                    .build()?,
            };
            runtime.block_on(serve(config))
        }
    }
}

fn init_log(filter: &str) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter).context("parsing the log filter")?,
        )
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(data_dir = %config.data_dir.display(), region = %config.region, "starting");
    stratus::server::run(config, listener, stratus::server::shutdown_signal(), |s| {
        tracing::info!(credentials = %s.credentials_file.display(), "root credentials (profile default)");
        // One line on stdout, for people and for scripts that started us on port 0.
        println!("stratus listening on http://{}", s.addr);
        println!(
            "credentials: export AWS_SHARED_CREDENTIALS_FILE={}",
            s.credentials_file.display()
        );
    })
    .await
}

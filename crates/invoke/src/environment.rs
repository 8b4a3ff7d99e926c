//! An execution environment as the invoker keeps it: what makes two interchangeable
//! ([`EnvKey`]), and its channels, output, exit, memory lease and idle time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stratus_lambda::FunctionConfig;
use stratus_sandbox::Exit;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::endpoint::{Invocation, RuntimeEvent};
use crate::limits::MemoryLease;
use crate::output::Output;

/// What makes two environments interchangeable: the same function version with the same
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvKey {
    name: String,
    version: String,
    revision: String,
}

impl EnvKey {
    pub fn of(c: &FunctionConfig) -> EnvKey {
        EnvKey {
            name: c.name.clone(),
            version: c.version.clone(),
            revision: c.revision_id.clone(),
        }
    }

    /// Whether it is function `name`'s (of `version`, if given).
    pub(crate) fn is(&self, name: &str, version: Option<&str>) -> bool {
        self.name == name && version.is_none_or(|v| self.version == v)
    }
}

pub(crate) struct Env {
    pub(crate) id: String,
    pub(crate) key: EnvKey,
    pub(crate) pid: i32,
    pub(crate) queue: mpsc::Sender<Invocation>,
    pub(crate) events: tokio::sync::Mutex<mpsc::UnboundedReceiver<RuntimeEvent>>,
    pub(crate) exit: watch::Receiver<Option<Exit>>,
    pub(crate) output: Arc<Output>,
    pub(crate) server: AbortHandle,
    pub(crate) last_used: Mutex<Instant>,
    /// Its share of the node's memory budget, given back when it goes.
    pub(crate) lease: Mutex<Option<MemoryLease>>,
    /// Kept initialised for provisioned concurrency: never reaped or evicted while set.
    pub(crate) provisioned: std::sync::atomic::AtomicBool,
    /// Its function is gone: it ends after its invocation instead of waiting for another.
    pub(crate) retired: std::sync::atomic::AtomicBool,
    /// Its cgroup's peak-memory counter, for REPORT's Max Memory Used.
    pub(crate) peak: Option<stratus_sandbox::PeakMeter>,
}

impl Env {
    pub(crate) fn exited(&self) -> Option<Exit> {
        self.exit.borrow().clone()
    }

    pub(crate) fn release_memory(&self) {
        if let Ok(mut l) = self.lease.lock() {
            l.take();
        }
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn is_provisioned(&self) -> bool {
        self.provisioned.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or(Duration::MAX)
    }
}

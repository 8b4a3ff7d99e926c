//! Admission control: how many invocations may run at once, and how much memory the live
//! environments may claim.
//!
//! Lambda's rules: a function with reserved concurrency R may run at most R invocations at
//! once (R = 0 disables it), and those R are set aside from the account's limit; every other
//! function shares what is left (the unreserved pool). Over a limit, a synchronous caller is
//! throttled with a reason naming which limit it hit.
//!
//! The decision is a pure function of the counts ([`decide`]), tested table-style; the gate
//! around it only keeps the counts. Whatever frees capacity (a finished invocation, an
//! environment's memory given back) is announced to the [`Releases`] listeners, so work that
//! waits for capacity (the asynchronous queue) resumes at once instead of polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Why an invocation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The account's unreserved pool is in use.
    ConcurrentInvocationLimitExceeded,
    /// The function's reserved concurrency is in use (or is 0).
    ReservedFunctionConcurrentInvocationLimitExceeded,
}

impl Throttle {
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::ConcurrentInvocationLimitExceeded => "ConcurrentInvocationLimitExceeded",
            Throttle::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
        }
    }
}

/// What the gate knows at the moment of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The function's reserved concurrency, if it has one.
    pub reserved: Option<u32>,
    /// Invocations of this function running now.
    pub function_in_flight: u32,
    /// Invocations of functions without a reservation running now.
    pub unreserved_in_flight: u32,
    /// The unreserved pool: account limit minus every reservation.
    pub unreserved_limit: u32,
}

/// May one more invocation start?
pub fn decide(o: Observation) -> Result<(), Throttle> {
    match o.reserved {
        Some(r) if o.function_in_flight >= r => {
            Err(Throttle::ReservedFunctionConcurrentInvocationLimitExceeded)
        }
        Some(_) => Ok(()),
        None if o.unreserved_in_flight >= o.unreserved_limit => {
            Err(Throttle::ConcurrentInvocationLimitExceeded)
        }
        None => Ok(()),
    }
}

/// Capacity that has just become free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freed<'a> {
    /// An invocation of this function, which has reserved concurrency, ended.
    Function(&'a str),
    /// A slot of the unreserved pool, or memory of the node's budget.
    Pool,
}

type Listener = Arc<dyn Fn(Freed<'_>) + Send + Sync>;

/// Who is told when capacity frees. Listeners run on the releasing thread (after every
/// invocation), with no lock of the gate or the budget held; they must be quick, must not
/// block and must not subscribe.
#[derive(Clone, Default)]
pub struct Releases {
    listeners: Arc<RwLock<Vec<Listener>>>,
}

impl Releases {
    pub fn subscribe(&self, f: impl Fn(Freed<'_>) + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(f));
    }

    pub fn announce(&self, freed: Freed<'_>) {
        for f in self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            f(freed);
        }
    }
}

#[derive(Default)]
struct Counts {
    per_function: HashMap<String, u32>,
    unreserved: u32,
}

/// Counts running invocations and admits new ones.
#[derive(Clone, Default)]
pub struct ConcurrencyGate {
    counts: Arc<Mutex<Counts>>,
    releases: Releases,
}

/// Held while an invocation runs; dropping it frees the slot.
pub struct Permit {
    counts: Arc<Mutex<Counts>>,
    releases: Releases,
    function: String,
    reserved: bool,
}

impl ConcurrencyGate {
    /// A gate that announces every freed slot to `releases`.
    pub fn new(releases: Releases) -> ConcurrencyGate {
        ConcurrencyGate {
            counts: Arc::default(),
            releases,
        }
    }

    pub fn acquire(
        &self,
        function: &str,
        reserved: Option<u32>,
        unreserved_limit: u32,
    ) -> Result<Permit, Throttle> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let obs = Observation {
            reserved,
            function_in_flight: c.per_function.get(function).copied().unwrap_or(0),
            unreserved_in_flight: c.unreserved,
            unreserved_limit,
        };
        decide(obs)?;
        *c.per_function.entry(function.to_owned()).or_default() += 1;
        if reserved.is_none() {
            c.unreserved += 1;
        }
        Ok(Permit {
            counts: self.counts.clone(),
            releases: self.releases.clone(),
            function: function.to_owned(),
            reserved: reserved.is_some(),
        })
    }

    /// Invocations running now, in total.
    pub fn in_flight(&self) -> u32 {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.per_function.values().sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = c.per_function.get_mut(&self.function) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_function.remove(&self.function);
                }
            }
            if !self.reserved {
                c.unreserved = c.unreserved.saturating_sub(1);
            }
        }
        self.releases.announce(if self.reserved {
            Freed::Function(&self.function)
        } else {
            Freed::Pool
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_lambdas_rules() {
        use Throttle::*;
        let o =
            |reserved, function_in_flight, unreserved_in_flight, unreserved_limit| Observation {
                reserved,
                function_in_flight,
                unreserved_in_flight,
                unreserved_limit,
            };
        let table = [
            // reserved, fn, unreserved, limit → outcome
            (o(None, 0, 0, 1000), Ok(())),
            (o(None, 5, 999, 1000), Ok(())),
            (
                o(None, 0, 1000, 1000),
                Err(ConcurrentInvocationLimitExceeded),
            ),
            (o(Some(2), 1, 1000, 1000), Ok(())),
            (
                o(Some(2), 2, 0, 1000),
                Err(ReservedFunctionConcurrentInvocationLimitExceeded),
            ),
            (
                o(Some(0), 0, 0, 1000),
                Err(ReservedFunctionConcurrentInvocationLimitExceeded),
            ),
            (o(None, 0, 0, 0), Err(ConcurrentInvocationLimitExceeded)),
        ];
        for (obs, want) in table {
            assert_eq!(decide(obs), want, "{obs:?}");
        }
    }

    #[test]
    fn permits_count_and_release() {
        let gate = ConcurrencyGate::default();
        let a = gate.acquire("f", Some(2), 10).unwrap();
        let _b = gate.acquire("f", Some(2), 10).unwrap();
        assert_eq!(
            gate.acquire("f", Some(2), 10).err(),
            Some(Throttle::ReservedFunctionConcurrentInvocationLimitExceeded)
        );
        drop(a);
        assert!(gate.acquire("f", Some(2), 10).is_ok());
        let _u: Vec<_> = (0..3)
            .map(|_| gate.acquire("g", None, 3).unwrap())
            .collect();
        assert_eq!(
            gate.acquire("h", None, 3).err(),
            Some(Throttle::ConcurrentInvocationLimitExceeded)
        );
        // Reserved functions do not draw from the unreserved pool.
        assert_eq!(gate.in_flight(), 4);
    }

    #[test]
    fn every_freed_slot_and_lease_is_announced() {
        let releases = Releases::default();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        releases.subscribe(move |f| {
            h.lock().unwrap().push(match f {
                Freed::Function(name) => format!("function {name}"),
                Freed::Pool => "pool".to_owned(),
            })
        });
        let gate = ConcurrencyGate::new(releases.clone());
        let budget = MemoryBudget::announcing(256, releases);
        drop(gate.acquire("f", Some(1), 10).unwrap());
        drop(gate.acquire("g", None, 10).unwrap());
        drop(budget.reserve(128).unwrap());
        // A refused admission frees nothing.
        let held = gate.acquire("f", Some(1), 10).unwrap();
        assert!(gate.acquire("f", Some(1), 10).is_err());
        drop(held);
        assert_eq!(
            *heard.lock().unwrap(),
            ["function f", "pool", "pool", "function f"]
        );
    }
}

/// The node's memory budget: the sum of MemorySize over live environments stays under it,
/// so the host never swaps or runs out of memory because of functions.
#[derive(Clone)]
pub struct MemoryBudget {
    budget_mb: u64,
    used_mb: Arc<Mutex<u64>>,
    releases: Releases,
}

/// Memory claimed by one environment; dropping it gives the memory back.
pub struct MemoryLease {
    used_mb: Arc<Mutex<u64>>,
    releases: Releases,
    mb: u64,
}

impl MemoryBudget {
    pub fn new(budget_mb: u64) -> MemoryBudget {
        MemoryBudget::announcing(budget_mb, Releases::default())
    }

    /// A budget that announces every lease given back to `releases`.
    pub fn announcing(budget_mb: u64, releases: Releases) -> MemoryBudget {
        MemoryBudget {
            budget_mb,
            used_mb: Arc::default(),
            releases,
        }
    }

    /// Claims `mb`, or says how many more megabytes would have to be freed first.
    pub fn reserve(&self, mb: u64) -> Result<MemoryLease, u64> {
        let mut used = self.used_mb.lock().unwrap_or_else(|p| p.into_inner());
        if *used + mb > self.budget_mb {
            return Err(*used + mb - self.budget_mb);
        }
        *used += mb;
        Ok(MemoryLease {
            used_mb: self.used_mb.clone(),
            releases: self.releases.clone(),
            mb,
        })
    }

    pub fn used_mb(&self) -> u64 {
        *self.used_mb.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn budget_mb(&self) -> u64 {
        self.budget_mb
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        {
            let mut used = self.used_mb.lock().unwrap_or_else(|p| p.into_inner());
            *used = used.saturating_sub(self.mb);
        }
        self.releases.announce(Freed::Pool);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod memory_tests {
    use super::*;

    #[test]
    fn the_budget_is_never_exceeded_and_leases_give_back() {
        let b = MemoryBudget::new(1024);
        let a = b.reserve(512).unwrap();
        let _c = b.reserve(512).unwrap();
        assert_eq!(b.reserve(128).err(), Some(128));
        drop(a);
        assert!(b.reserve(128).is_ok());
        assert_eq!(b.used_mb(), 512);
    }
}

//! The asynchronous queue's scheduling state: which queued event to dispatch next. Pure: no
//! I/O and no clock (callers pass the time), so it is tested table-style. The queue rebuilds it
//! from the store at start and keeps it beside the store, which stays the source of truth: this
//! holds only keys, functions and times, never payloads.
//!
//! - Per function, a *lane*: its ready events in arrival order (a B-tree keyed by arrival).
//! - One timer heap: events whose retry is not due yet, and waiting lanes' wake-ups.
//! - A round-robin of the lanes that may dispatch, so one function's backlog never starves
//!   another's events.
//! - Per lane at most one *probe*: an event dispatched but not yet admitted. The lane's next
//!   event goes only once the probe is admitted, so events are admitted in arrival order, and a
//!   function at its concurrency limit costs one refused admission per freed slot rather than
//!   one per queued event.
//! - A refused probe goes back to the head of its lane, which then *waits* for capacity: until a
//!   release that could admit it is announced ([`Schedule::freed`]), or until its wake-up time
//!   (the head's expiry, or the fallback period), whichever comes first. Waiting is not an
//!   attempt: nothing about the event changes. A release announced between a probe's dispatch
//!   and its refusal is seen (release counters, taken at dispatch), so no wake-up is lost.
//!
//! Every operation is O(log n) in the number of queued events (a release of the pool or of
//! memory also visits the lanes waiting for it). [`Schedule::work`] counts the steps taken, so
//! tests assert on it rather than on time.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use crate::limits::Freed;

/// The schedule's handle on a queued event (not stored: a fresh one each run).
pub type EventId = u64;

/// Arrival order: the time the event was accepted, then its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arrival {
    pub enqueued_ms: u64,
    pub seq: u64,
}

/// The limit that refused an admission, and so what a waiting lane waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The function's reserved concurrency: one of its own invocations must end.
    Function,
    /// The unreserved pool: an unreserved invocation must end.
    Pool,
    /// The node's memory budget: any invocation must end or any environment go.
    Memory,
}

/// Release counters seen when a probe was dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    function: u64,
    pool: u64,
    any: u64,
}

/// An event handed out for dispatch; given back with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: EventId,
    /// Its key in the store.
    pub key: String,
    pub function: String,
    seen: Seen,
}

struct Entry {
    key: String,
    function: String,
    arrival: Arrival,
}

#[derive(Default)]
struct Lane {
    ready: BTreeSet<(Arrival, EventId)>,
    probe: Option<EventId>,
    /// What it waits for, and the generation that names this wait.
    waiting: Option<(Limit, u64)>,
    /// In `runnable` (possibly stale: checked when popped).
    queued: bool,
    /// Releases of this function's reserved concurrency.
    releases: u64,
}

impl Lane {
    fn can_dispatch(&self) -> bool {
        !self.ready.is_empty() && self.probe.is_none() && self.waiting.is_none()
    }

    fn idle(&self) -> bool {
        self.ready.is_empty() && self.probe.is_none() && self.waiting.is_none()
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The event's retry is due.
    Due(EventId),
    /// The lane's wait (of this generation) ends.
    Wake(String, u64),
}

pub struct Schedule {
    entries: HashMap<EventId, Entry>,
    lanes: HashMap<String, Lane>,
    runnable: VecDeque<String>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    /// Lanes waiting for the pool, and for memory, with their wait's generation.
    pool_waiters: Vec<(String, u64)>,
    memory_waiters: Vec<(String, u64)>,
    pool_releases: u64,
    any_releases: u64,
    next_id: EventId,
    next_wait: u64,
    fallback_ms: u64,
    work: u64,
}

impl Schedule {
    /// `fallback` bounds a wait: a lane that hears of no release probes again after it.
    pub fn new(fallback: Duration) -> Schedule {
        Schedule {
            entries: HashMap::new(),
            lanes: HashMap::new(),
            runnable: VecDeque::new(),
            timers: BinaryHeap::new(),
            pool_waiters: Vec::new(),
            memory_waiters: Vec::new(),
            pool_releases: 0,
            any_releases: 0,
            next_id: 0,
            next_wait: 0,
            fallback_ms: fallback.as_millis() as u64,
            work: 0,
        }
    }

    /// Events queued (ready, delayed, waiting or running).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The earliest arrival time of an event queued (a scan of every event).
    pub fn oldest_arrival_ms(&self) -> Option<u64> {
        self.entries.values().map(|e| e.arrival.enqueued_ms).min()
    }

    /// Steps taken so far (heap, tree and queue operations), for tests of the cost.
    #[cfg(test)]
    pub fn work(&self) -> u64 {
        self.work
    }

    /// When the earliest timer fires, if any.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Adds an event of `function` (its name, the unit of concurrency), ready at `due_ms`.
    pub fn insert(
        &mut self,
        key: String,
        function: String,
        arrival: Arrival,
        due_ms: u64,
        now: u64,
    ) -> EventId {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                key,
                function,
                arrival,
            },
        );
        self.schedule(id, due_ms, now);
        id
    }

    /// The next event to dispatch, taking lanes in turn; `None` when no lane can go now.
    pub fn next(&mut self, now: u64) -> Option<Ticket> {
        self.fire_timers(now);
        while let Some(function) = self.runnable.pop_front() {
            self.work += 1;
            let Some(lane) = self.lanes.get_mut(&function) else {
                continue;
            };
            if !std::mem::take(&mut lane.queued) || !lane.can_dispatch() {
                continue;
            }
            let Some((_, id)) = lane.ready.pop_first() else {
                continue;
            };
            self.work += 1;
            lane.probe = Some(id);
            let seen = Seen {
                function: lane.releases,
                pool: self.pool_releases,
                any: self.any_releases,
            };
            let key = self.entries.get(&id).map(|e| e.key.clone())?;
            return Some(Ticket {
                id,
                key,
                function,
                seen,
            });
        }
        None
    }

    /// The ticket's event was admitted (it runs now): the lane's next event may go.
    pub fn admitted(&mut self, t: &Ticket) {
        self.end_probe(t);
        self.mark_runnable(&t.function);
    }

    /// The event was refused by `limit`: back to the head of its lane, which waits for a
    /// release of that limit, or until `expires_ms` or the fallback period, whichever is
    /// first. Not an attempt.
    pub fn throttled(&mut self, t: &Ticket, limit: Limit, expires_ms: u64, now: u64) {
        self.end_probe(t);
        let Some(e) = self.entries.get(&t.id) else {
            return;
        };
        let arrival = e.arrival;
        let (pool, any) = (self.pool_releases, self.any_releases);
        let lane = self.lanes.entry(t.function.clone()).or_default();
        lane.ready.insert((arrival, t.id));
        self.work += 1;
        let released = match limit {
            Limit::Function => lane.releases != t.seen.function,
            Limit::Pool => pool != t.seen.pool,
            Limit::Memory => any != t.seen.any,
        };
        if !released && lane.waiting.is_none() {
            let generation = self.next_wait;
            self.next_wait += 1;
            lane.waiting = Some((limit, generation));
            let wake = expires_ms.min(now + self.fallback_ms);
            self.timers
                .push(Reverse((wake, Timer::Wake(t.function.clone(), generation))));
            self.work += 1;
            match limit {
                Limit::Function => {}
                Limit::Pool => self.pool_waiters.push((t.function.clone(), generation)),
                Limit::Memory => self.memory_waiters.push((t.function.clone(), generation)),
            }
        }
        self.mark_runnable(&t.function);
    }

    /// The event runs again at `due_ms` (a retry, or an error before admission).
    pub fn retry(&mut self, t: &Ticket, due_ms: u64, now: u64) {
        self.end_probe(t);
        if self.entries.contains_key(&t.id) {
            self.schedule(t.id, due_ms, now);
        }
        self.mark_runnable(&t.function);
    }

    /// The event's outcome is committed: it has left the store, and leaves the schedule.
    pub fn done(&mut self, t: &Ticket) {
        self.end_probe(t);
        self.entries.remove(&t.id);
        self.mark_runnable(&t.function);
        if self.lanes.get(&t.function).is_some_and(Lane::idle) {
            self.lanes.remove(&t.function);
        }
    }

    /// Capacity freed: wakes the lanes waiting for it. Returns whether one woke (there is
    /// something to dispatch).
    pub fn freed(&mut self, freed: Freed<'_>) -> bool {
        self.any_releases += 1;
        let mut woke = false;
        match freed {
            Freed::Function(name) => {
                if let Some(lane) = self.lanes.get_mut(name) {
                    lane.releases += 1;
                    if let Some((Limit::Function, generation)) = lane.waiting {
                        woke |= self.wake(name, generation);
                    }
                }
            }
            Freed::Pool => {
                self.pool_releases += 1;
                for (name, generation) in std::mem::take(&mut self.pool_waiters) {
                    woke |= self.wake(&name, generation);
                }
            }
        }
        for (name, generation) in std::mem::take(&mut self.memory_waiters) {
            woke |= self.wake(&name, generation);
        }
        woke
    }

    fn schedule(&mut self, id: EventId, due_ms: u64, now: u64) {
        self.work += 1;
        if due_ms > now {
            self.timers.push(Reverse((due_ms, Timer::Due(id))));
            return;
        }
        let Some(e) = self.entries.get(&id) else {
            return;
        };
        let function = e.function.clone();
        self.lanes
            .entry(function.clone())
            .or_default()
            .ready
            .insert((e.arrival, id));
        self.mark_runnable(&function);
    }

    fn fire_timers(&mut self, now: u64) {
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            self.work += 1;
            match timer {
                Timer::Due(id) => self.schedule(id, now, now),
                Timer::Wake(name, generation) => {
                    self.wake(&name, generation);
                }
            }
        }
    }

    /// Ends the lane's wait if it is still the wait `generation` names; says whether it did.
    fn wake(&mut self, name: &str, generation: u64) -> bool {
        self.work += 1;
        if let Some(lane) = self.lanes.get_mut(name)
            && lane.waiting.is_some_and(|(_, g)| g == generation)
        {
            lane.waiting = None;
            self.mark_runnable(name);
            return true;
        }
        false
    }

    fn end_probe(&mut self, t: &Ticket) {
        if let Some(lane) = self.lanes.get_mut(&t.function)
            && lane.probe == Some(t.id)
        {
            lane.probe = None;
        }
    }

    fn mark_runnable(&mut self, name: &str) {
        if let Some(lane) = self.lanes.get_mut(name)
            && lane.can_dispatch()
            && !lane.queued
        {
            lane.queued = true;
            self.runnable.push_back(name.to_owned());
            self.work += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FALLBACK: Duration = Duration::from_secs(5);

    fn arrival(n: u64) -> Arrival {
        Arrival {
            enqueued_ms: 1_000 + n,
            seq: n,
        }
    }

    /// Inserts `n` events of `f`, numbered from `from`, keyed `f/<n>`.
    fn fill(s: &mut Schedule, f: &str, from: u64, n: u64, now: u64) {
        for i in from..from + n {
            s.insert(format!("{f}/{i}"), f.into(), arrival(i), now, now);
        }
    }

    /// Dispatches and admits every event that can go now; their keys, in order.
    fn drain(s: &mut Schedule, now: u64) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(t) = s.next(now) {
            s.admitted(&t);
            out.push(t.key.clone());
        }
        out
    }

    #[test]
    fn a_lane_dispatches_in_arrival_order_whatever_the_insertion_order() {
        let mut s = Schedule::new(FALLBACK);
        // As a rebuild from the store may find them.
        for i in [3, 0, 4, 1, 2] {
            s.insert(format!("f/{i}"), "f".into(), arrival(i), 0, 0);
        }
        assert_eq!(drain(&mut s, 0), ["f/0", "f/1", "f/2", "f/3", "f/4"]);
    }

    #[test]
    fn one_probe_per_lane_until_it_is_admitted() {
        let mut s = Schedule::new(FALLBACK);
        fill(&mut s, "f", 0, 3, 0);
        let t = s.next(0).unwrap();
        assert_eq!(
            s.next(0),
            None,
            "the second event waits for the first's admission"
        );
        s.admitted(&t);
        assert_eq!(s.next(0).unwrap().key, "f/1");
    }

    #[test]
    fn lanes_take_turns_so_a_backlog_does_not_starve_others() {
        let mut s = Schedule::new(FALLBACK);
        fill(&mut s, "big", 0, 1_000, 0);
        fill(&mut s, "small", 1_000, 2, 0);
        let order: Vec<String> = drain(&mut s, 0).into_iter().take(5).collect();
        assert_eq!(
            order,
            ["big/0", "small/1000", "big/1", "small/1001", "big/2"]
        );
    }

    #[test]
    fn waiting_for_capacity_keeps_the_head_and_resumes_on_release() {
        // (limit refused by, release announced, wakes?)
        let table = [
            (Limit::Function, Freed::Function("f"), true),
            (Limit::Function, Freed::Function("g"), false),
            (Limit::Function, Freed::Pool, false),
            (Limit::Pool, Freed::Pool, true),
            (Limit::Pool, Freed::Function("g"), false),
            (Limit::Memory, Freed::Function("g"), true),
            (Limit::Memory, Freed::Pool, true),
        ];
        for (limit, freed, wakes) in table {
            let mut s = Schedule::new(FALLBACK);
            fill(&mut s, "f", 0, 3, 0);
            s.insert("g/9".into(), "g".into(), arrival(9), 10_000_000, 0);
            let t = s.next(10).unwrap();
            s.throttled(&t, limit, 60_000, 10);
            assert_eq!(s.next(10), None, "{limit:?}: waits");
            assert_eq!(s.freed(freed), wakes, "{limit:?} {freed:?}");
            let again = s.next(20);
            if wakes {
                let again = again.unwrap();
                assert_eq!(
                    (again.id, &*again.key),
                    (t.id, "f/0"),
                    "{limit:?} {freed:?}"
                );
            } else {
                assert_eq!(again, None, "{limit:?} {freed:?}");
            }
        }
    }

    #[test]
    fn a_release_between_dispatch_and_refusal_is_not_lost() {
        for (limit, freed) in [
            (Limit::Function, Freed::Function("f")),
            (Limit::Pool, Freed::Pool),
            (Limit::Memory, Freed::Function("other")),
        ] {
            let mut s = Schedule::new(FALLBACK);
            fill(&mut s, "f", 0, 2, 0);
            let t = s.next(0).unwrap();
            s.freed(freed);
            s.throttled(&t, limit, 60_000, 0);
            assert_eq!(s.next(0).map(|t| t.key), Some("f/0".into()), "{limit:?}");
        }
    }

    #[test]
    fn a_wait_ends_at_the_heads_expiry_or_the_fallback() {
        // (expiry, wakes at)
        for (expires, wake) in [(3_000, 3_000), (60_000, 5_000)] {
            let mut s = Schedule::new(FALLBACK);
            fill(&mut s, "f", 0, 2, 0);
            let t = s.next(0).unwrap();
            s.throttled(&t, Limit::Function, expires, 0);
            assert_eq!(s.next_timer(), Some(wake));
            assert_eq!(s.next(wake - 1), None);
            assert_eq!(s.next(wake).unwrap().key, "f/0", "the head probes again");
        }
    }

    #[test]
    fn retries_wait_for_their_time_then_rejoin_in_arrival_order() {
        let mut s = Schedule::new(FALLBACK);
        fill(&mut s, "f", 0, 3, 0);
        let t = s.next(0).unwrap();
        s.admitted(&t);
        s.retry(&t, 500, 0);
        assert_eq!(s.next_timer(), Some(500));
        assert_eq!(drain(&mut s, 0), ["f/1", "f/2"]);
        assert_eq!(drain(&mut s, 499), Vec::<String>::new());
        assert_eq!(drain(&mut s, 500), ["f/0"]);
    }

    #[test]
    fn done_events_leave_and_empty_lanes_go() {
        let mut s = Schedule::new(FALLBACK);
        fill(&mut s, "f", 0, 1, 0);
        let t = s.next(0).unwrap();
        s.admitted(&t);
        s.done(&t);
        assert_eq!(s.len(), 0);
        assert!(s.lanes.is_empty());
        assert_eq!(s.next(0), None);
    }

    /// The steps a dispatch takes do not grow with the backlog: a waiting lane of `n` events,
    /// `n` delayed retries, then one event of another function inserted, dispatched, admitted
    /// and done, and one release of the waiting lane.
    fn steps_with_backlog(n: u64) -> (u64, u64) {
        let mut s = Schedule::new(Duration::from_secs(3600));
        fill(&mut s, "busy", 0, n, 0);
        for i in 0..n {
            s.insert(
                format!("later/{i}"),
                "later".into(),
                arrival(i),
                1_000_000,
                0,
            );
        }
        let t = s.next(0).unwrap();
        s.throttled(&t, Limit::Function, 10_000_000, 0);

        let before = s.work();
        s.insert("other/0".into(), "other".into(), arrival(n), 1, 1);
        let o = s.next(1).unwrap();
        assert_eq!(o.key, "other/0");
        s.admitted(&o);
        s.done(&o);
        let dispatch = s.work() - before;

        let before = s.work();
        s.freed(Freed::Function("busy"));
        let b = s.next(2).unwrap();
        assert_eq!(b.key, "busy/0");
        s.admitted(&b);
        let release = s.work() - before;
        (dispatch, release)
    }

    #[test]
    fn a_dispatch_costs_the_same_with_ten_or_a_hundred_thousand_queued() {
        let small = steps_with_backlog(10);
        let large = steps_with_backlog(100_000);
        assert_eq!(small, large);
        assert!(large.0 <= 8 && large.1 <= 8, "{large:?}");
    }
}

//! The sandbox helper, started from the real binary, running real programs.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stratus_sandbox::{
    Bind, HelperConfig, Layout, Limits, SandboxSpec, SpawnError, SpawnFailure, Spawner, Zygote,
};

fn helper(
    root: &Path,
    pool: usize,
) -> (
    Spawner,
    tokio::sync::mpsc::UnboundedReceiver<stratus_sandbox::Exit>,
    Layout,
) {
    helper_with(root, pool, Vec::new())
}

fn helper_with(
    root: &Path,
    pool: usize,
    zygotes: Vec<Zygote>,
) -> (
    Spawner,
    tokio::sync::mpsc::UnboundedReceiver<stratus_sandbox::Exit>,
    Layout,
) {
    let rootfs = root.join("rootfs");
    stratus_sandbox::rootfs::build_template(&rootfs, 993, 990).unwrap();
    // A subtree of our own, so tests running in parallel do not see each other.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("stratus-test-{}-{n}", std::process::id());
    let layout = Layout::detect(Path::new("/sys/fs/cgroup"), &tag).unwrap();
    let cfg = HelperConfig {
        rootfs,
        cgroups: layout.clone(),
        host_uid: 100_993,
        host_gid: 100_990,
        uid: 993,
        gid: 990,
        network: false,
        expedite_rcu: false,
        port: 9001,
        pool,
        zygote_pool: 1,
        zygotes,
        log: "warn".into(),
        ephemeral_dir: None,
        instance: stratus_sandbox::instance::new_tag(),
        registry: root.join("instances"),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let s = Spawner::start(Path::new(env!("CARGO_BIN_EXE_stratus")), &cfg, tx).unwrap();
    (s, rx, layout)
}

/// Cgroups of environments, not of blank sandboxes.
fn environment_cgroups(layout: &Layout) -> Vec<String> {
    let mut all = layout.list();
    all.retain(|c| !c.starts_with("pool-"));
    all
}

fn spec(id: &str, script: &str, task: &Path) -> SandboxSpec {
    SandboxSpec {
        id: id.into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        workdir: "/var/task".into(),
        binds: vec![Bind {
            source: task.to_owned(),
            target: PathBuf::from("/var/task"),
        }],
        tmp_mb: 16,
        limits: Limits {
            memory_mb: 128,
            pids_max: 32,
            cpu_millis: 1000,
        },
        hostname: "stratus".into(),
    }
}

/// Runs `spec` to its end: its output and how it ended.
async fn run_to_end(
    spawner: &Spawner,
    exits: &mut tokio::sync::mpsc::UnboundedReceiver<stratus_sandbox::Exit>,
    spec: SandboxSpec,
) -> (String, stratus_sandbox::Exit) {
    let s = spawner.spawn(spec).await.unwrap();
    let mut out = String::new();
    std::fs::File::from(s.output)
        .read_to_string(&mut out)
        .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.recv())
        .await
        .unwrap()
        .unwrap();
    (out, exit)
}

#[tokio::test]
async fn a_sandbox_nobody_waits_for_is_ended() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    let (spawner, mut exits, _layout) = helper_with(dir.path(), 0, Vec::new());
    // The request is sent at the first poll; the caller gives up before the answer.
    let gave_up = tokio::time::timeout(
        Duration::from_micros(1),
        spawner.spawn(spec("orphan", "exec sleep 600", &task)),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "the sandbox came back within a microsecond"
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.recv())
        .await
        .expect("the orphan was not ended")
        .unwrap();
    assert_eq!((exit.id.as_str(), exit.signal), ("orphan", Some(9)));
    spawner.shutdown();
}

/// Runs a program that reports what it sees, and checks it saw only its sandbox.
async fn runs_isolated(
    id: &str,
    spawner: &Spawner,
    exits: &mut tokio::sync::mpsc::UnboundedReceiver<stratus_sandbox::Exit>,
    layout: &Layout,
    task: &Path,
) {
    std::fs::write(task.join("hello.txt"), "hi from the task\n").unwrap();
    let script = "cat /var/task/hello.txt; id -u; echo pid=$$; hostname; \
                  ls /proc | grep -c '^[0-9]'; \
                  touch /var/task/x 2>/dev/null && echo task-writable || echo task-readonly; \
                  touch /etc/x 2>/dev/null && echo etc-writable || echo etc-readonly; \
                  touch /tmp/x && echo tmp-writable; \
                  test -e /etc/shadow && echo shadow-visible || echo no-shadow; \
                  echo sockets $(ls -l /proc/$$/fd | grep -c socket); \
                  grep -E '^(SigBlk|SigIgn)' /proc/$$/status | tr -s '\t' ' '; \
                  echo policy $(cut -d' ' -f41 /proc/$$/stat); \
                  echo cgroup $( (grep ':memory:' /proc/$$/cgroup || grep '^0::' /proc/$$/cgroup) \
                                 | head -1 | sed 's|.*/||')";
    let (out, exit) = run_to_end(spawner, exits, spec(id, script, task)).await;
    assert_eq!(exit.exit_code, Some(0), "output: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hi from the task", "{out}");
    assert_eq!(lines[1], "993", "{out}");
    assert_eq!(
        lines[2], "pid=2",
        "the function is the second process of its own PID namespace: {out}"
    );
    assert_eq!(lines[3], "stratus");
    assert!(
        lines[4].parse::<u32>().unwrap() <= 4,
        "only our processes are visible: {out}"
    );
    // The program runs in its sandbox's own cgroup (the blank's renamed, or made, at the
    // claim), not in a blank's `pool-` one.
    let cgroup = format!("cgroup {id}");
    assert_eq!(
        &lines[5..],
        [
            "task-readonly",
            "etc-readonly",
            "tmp-writable",
            "no-shadow",
            "sockets 0",
            // The helper's blocked and ignored signals do not reach the function.
            "SigBlk: 0000000000000000",
            "SigIgn: 0000000000000000",
            // SCHED_OTHER, not the SCHED_IDLE blanks are made under.
            "policy 0",
            &cgroup,
        ]
    );
    assert!(
        environment_cgroups(layout).is_empty(),
        "cgroups left: {:?}",
        layout.list()
    );
}

#[tokio::test]
async fn a_sandbox_runs_a_program_isolated_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    let (spawner, mut exits, layout) = helper(dir.path(), 0);
    runs_isolated("t1", &spawner, &mut exits, &layout, &task).await;
    assert_eq!(helper_children(&spawner).len(), 0, "no pool was asked for");
}

/// The helper's children that are sandbox inits (blank or running): the ones in a PID
/// namespace of their own (the helper's other child, the preparer, is not).
fn helper_children(spawner: &Spawner) -> Vec<u32> {
    let pid = spawner.helper_pid();
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let text = std::fs::read_to_string(task.unwrap().path().join("children")).unwrap();
        out.extend(text.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
    }
    out.retain(|&child| {
        !ended(child)
            && std::fs::read_to_string(format!("/proc/{child}/status")).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("NSpid:") && l.split_whitespace().count() > 2)
            })
    });
    out
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn blank_sandboxes_are_prepared_ahead_claimed_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    let (spawner, mut exits, layout) = helper(dir.path(), 2);
    // Ready means in the helper's hands: with its cgroup, where cgroups can be renamed.
    wait_for("two blanks", || {
        helper_children(&spawner).len() == 2 && (!layout.renames() || layout.list().len() == 2)
    });
    let blanks = helper_children(&spawner);
    // Blanks belong to no function yet: where cgroups can be renamed (v1) each sits in a
    // `pool-` cgroup of its own, without limits, that its claim renames; elsewhere in none.
    let pooled: Vec<String> = layout.list();
    if layout.renames() {
        assert_eq!(pooled.len(), 2, "{pooled:?}");
        assert!(pooled.iter().all(|c| c.starts_with("pool-")), "{pooled:?}");
    } else {
        assert!(pooled.is_empty(), "{pooled:?}");
    }
    runs_isolated("p1", &spawner, &mut exits, &layout, &task).await;
    // The sandbox that ran was one of the blanks (the oldest), and the pool refilled.
    wait_for("the pool to refill", || {
        helper_children(&spawner).len() == 2
    });
    let now = helper_children(&spawner);
    assert_eq!(
        now.iter().filter(|p| blanks.contains(p)).count(),
        1,
        "one blank was used: before {blanks:?}, after {now:?}"
    );
    // A blank killed unclaimed is replaced, never handed out.
    let victim = now[0];
    stratus_sandbox::kill(victim as i32);
    wait_for("a replacement blank", || {
        let c = helper_children(&spawner);
        c.len() == 2 && !c.contains(&victim)
    });
    runs_isolated("p2", &spawner, &mut exits, &layout, &task).await;
    let now = helper_children(&spawner);
    let pid = spawner.helper_pid();
    spawner.shutdown();
    // The helper leaves when the server's end closes, taking every blank with it.
    wait_for("the helper to exit", || ended(pid));
    for p in now {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "blank {p} outlived the helper"
        );
    }
    assert!(layout.list().is_empty(), "{:?}", layout.list());
    layout.remove_parent();
}

/// A limit file of environment or blank `id`, read on the host (from whichever of its
/// cgroup directories has it).
fn limit_file(layout: &Layout, id: &str, file: &str) -> Option<String> {
    layout
        .paths(id)
        .iter()
        .find_map(|dir| std::fs::read_to_string(dir.join(file)).ok())
        .map(|s| s.trim().to_string())
}

#[tokio::test]
async fn every_claim_gets_its_own_limits_from_blanks_placed_with_the_last_ones() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    let (spawner, mut exits, layout) = helper(dir.path(), 1);
    let v1 = matches!(layout, Layout::V1 { .. });
    let memory_file = if v1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    // Growing (memsw must rise before the limit on v1), shrinking, then the same again
    // (nothing to write): each time the environment has exactly its spec's limits.
    let mut last: Option<u64> = None;
    for (i, (mb, pids)) in [(128, 32), (512, 32), (256, 40), (256, 40)]
        .into_iter()
        .enumerate()
    {
        // A blank in the helper's hands, placed with the last claim's limits (none before
        // the first): the claim takes it.
        let mut taken = None;
        if layout.renames() {
            let want = last.map(|mb| (mb << 20).to_string());
            wait_for("a placed blank", || {
                taken = layout.list().into_iter().find(|c| {
                    c.starts_with("pool-")
                        && want
                            .as_ref()
                            .is_none_or(|w| limit_file(&layout, c, memory_file).as_ref() == Some(w))
                });
                taken.is_some() && preparer_idle(&spawner)
            });
        }
        let id = format!("lim{i}");
        let mut s = spec(&id, "exec sleep 1000", &task);
        s.limits.memory_mb = mb;
        s.limits.pids_max = pids;
        let blank_dir = taken.as_ref().map(|b| cgroup_dir_inode(&layout, b));
        let started = spawner.spawn(s).await.unwrap();
        if let Some(ino) = blank_dir {
            // The blank's own cgroup, renamed, its limits changed in place: not a new one
            // (which a claim makes when changing them fails).
            assert_eq!(
                cgroup_dir_inode(&layout, &id),
                ino,
                "claim {i} kept the blank's cgroup"
            );
        }
        let bytes = (mb << 20).to_string();
        assert_eq!(limit_file(&layout, &id, memory_file), Some(bytes.clone()));
        if v1 && let Some(memsw) = limit_file(&layout, &id, "memory.memsw.limit_in_bytes") {
            assert_eq!(memsw, bytes);
        }
        assert_eq!(limit_file(&layout, &id, "pids.max"), Some(pids.to_string()));
        let quota = if v1 { "cpu.cfs_quota_us" } else { "cpu.max" };
        assert!(
            limit_file(&layout, &id, quota).is_some_and(|q| q.starts_with("100000")),
            "one CPU while it starts"
        );
        stratus_sandbox::kill(started.pid);
        tokio::time::timeout(Duration::from_secs(10), exits.recv())
            .await
            .unwrap()
            .unwrap();
        last = Some(mb);
    }
    spawner.shutdown();
}

/// The inode of cgroup `id`'s (first) directory.
fn cgroup_dir_inode(layout: &Layout, id: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(&layout.paths(id)[0]).unwrap().ino()
}

#[tokio::test]
async fn concurrent_spawns_report_failures_early_exits_and_successes() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    let (spawner, mut exits, layout) = helper(dir.path(), 2);
    let mut missing = spec("bad", "unused", &task);
    missing.argv = vec!["/var/task/no-such-bootstrap".into()];
    let quick = spec("quick", "exit 7", &task);
    let slow = spec("slow", "exec sleep 1000", &task);
    let (a, b, c) = tokio::join!(
        spawner.spawn(missing),
        spawner.spawn(quick),
        spawner.spawn(slow)
    );
    // The function's missing program is its own fault, and said so as a value.
    let err = a.unwrap_err();
    assert!(
        matches!(&err, SpawnError::Failed(SpawnFailure::Program { step, .. }) if step.starts_with("execve")),
        "{err}"
    );
    // A spec too big for the control pipe is refused before any sandbox is made.
    let mut huge = spec("huge", "true", &task);
    huge.env.push(format!("BIG={}", "x".repeat(70 * 1024)));
    let err = spawner.spawn(huge).await.unwrap_err();
    assert!(
        matches!(&err, SpawnError::Failed(SpawnFailure::Platform(e)) if e.contains("is over")),
        "{err}"
    );
    let quick = b.unwrap();
    let slow = c.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((exit.id.as_str(), exit.exit_code), ("quick", Some(7)));
    drop(quick);
    stratus_sandbox::kill(slow.pid);
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.id, "slow");
    assert!(
        environment_cgroups(&layout).is_empty(),
        "cgroups left: {:?}",
        layout.list()
    );
    layout.remove_parent();
}

/// A zygote: reports that it started, waits for its spec on descriptor 3 and takes on its
/// environment and working directory. Started as a plain program (no descriptor 3), it says
/// so and reads its own environment.
const ZYGOTE: &str = r#"
import json, os
try:
    os.fstat(3)
    print("zygote ready", flush=True)
    if os.environ["MARK"] == "dies":
        raise SystemExit(3)
    if os.environ["MARK"] == "deaf":  # stops reading its spec, yet lives on
        import time
        os.close(3)
        time.sleep(600)
    n = int.from_bytes(os.read(3, 4), "little")
    data = b""
    while len(data) < n:
        data += os.read(3, n - len(data))
    spec = json.loads(data)
    env = dict(e.split("=", 1) for e in spec["env"])
    os.chdir(spec["workdir"])
    how = "zygote"
except OSError:
    env, how = os.environ, "fresh"
open("/tmp/x", "w").close()
print(how, os.getcwd(), env.get("MARK"), env.get("LANG"), open("hello.txt").read().strip(),
      sorted(os.listdir("/tmp")), flush=True)
"#;

fn zygote() -> Zygote {
    Zygote {
        argv: vec![
            "/usr/bin/python3".into(),
            "-S".into(),
            "-c".into(),
            ZYGOTE.into(),
        ],
        env: vec!["LANG=C.UTF-8".into(), "MARK=zygote".into()],
        binds: Vec::new(),
        fixed_env: vec!["LANG".into(), "LC_*".into()],
    }
}

/// The children of process `pid`'s main thread (none once it is gone).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Whether process `pid` has ended: gone, or a zombie waiting to be reaped.
fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Whether the helper's process that prepares blanks is waiting for its next request, so
/// that it has handed over every blank it made (the helper takes those in before requests).
fn preparer_idle(spawner: &Spawner) -> bool {
    let recvmsg = format!("{} ", libc::SYS_recvmsg);
    children_of(spawner.helper_pid()).into_iter().any(|child| {
        let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
        // In the helper's own pid namespace, unlike the sandboxes' inits.
        let own_ns = status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.split_whitespace().count() == 2);
        own_ns
            && std::fs::read_to_string(format!("/proc/{child}/syscall"))
                .is_ok_and(|s| s.starts_with(&recvmsg))
    })
}

/// Processes of blank sandboxes running the zygote, by host pid; with `waiting`, only those
/// blocked reading their spec (so past `zygote ready`).
fn zygote_processes(spawner: &Spawner, waiting: bool) -> Vec<u32> {
    let mut out = Vec::new();
    for init in helper_children(spawner) {
        for child in children_of(init) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            // `read` on the spec's descriptor (3).
            let reading = std::fs::read_to_string(format!("/proc/{child}/syscall"))
                .is_ok_and(|s| s.starts_with(&format!("{} 0x3 ", libc::SYS_read)));
            if cmdline.starts_with(b"/usr/bin/python3\0-S\0") && (reading || !waiting) {
                out.push(child);
            }
        }
    }
    out
}

async fn run_zygote_spec(
    spawner: &Spawner,
    exits: &mut tokio::sync::mpsc::UnboundedReceiver<stratus_sandbox::Exit>,
    id: &str,
    task: &Path,
    env: &[&str],
) -> String {
    let mut sp = spec(id, "unused", task);
    sp.argv = zygote().argv;
    sp.env = env.iter().map(|e| e.to_string()).collect();
    let (out, exit) = run_to_end(spawner, exits, sp).await;
    assert_eq!((exit.id.as_str(), exit.exit_code), (id, Some(0)), "{out}");
    out
}

/// A sandbox helper without plain blanks whose one zygote runs with `MARK=mark`, a task
/// directory with `hello.txt`, and the directory holding both (`None` without a Python to
/// be a zygote).
#[allow(clippy::type_complexity)]
fn zygote_helper(
    mark: &str,
) -> Option<(
    tempfile::TempDir,
    PathBuf,
    Spawner,
    tokio::sync::mpsc::UnboundedReceiver<stratus_sandbox::Exit>,
    Layout,
)> {
    if !Path::new("/usr/bin/python3").exists() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("hello.txt"), "hi from the task\n").unwrap();
    let z = Zygote {
        env: vec!["LANG=C.UTF-8".into(), format!("MARK={mark}")],
        ..zygote()
    };
    let (spawner, exits, layout) = helper_with(dir.path(), 0, vec![z]);
    Some((dir, task, spawner, exits, layout))
}

#[tokio::test]
async fn a_zygote_that_no_longer_reads_its_spec_is_replaced_at_the_claim() {
    let Some((_dir, task, spawner, mut exits, layout)) = zygote_helper("deaf") else {
        return; // no interpreter to be a zygote here
    };
    let served = ["LANG=C.UTF-8", "MARK=one"];
    let out = run_zygote_spec(&spawner, &mut exits, "d1", &task, &served).await;
    assert_eq!(out, "fresh /var/task one C.UTF-8 hi from the task ['x']\n");
    // A zygote alive but deaf: its spec descriptor closed, handed to the helper.
    wait_for("a deaf zygote", || {
        zygote_processes(&spawner, false)
            .iter()
            .any(|p| !Path::new(&format!("/proc/{p}/fd/3")).exists())
            && preparer_idle(&spawner)
    });
    // The claim cannot hand it the spec: the init ends it and starts the function afresh
    // (what the zygote printed stays in the output).
    let out = run_zygote_spec(&spawner, &mut exits, "d2", &task, &served).await;
    assert_eq!(
        out,
        "zygote ready\nfresh /var/task one C.UTF-8 hi from the task ['x']\n"
    );
    assert!(
        environment_cgroups(&layout).is_empty(),
        "cgroups left: {:?}",
        layout.list()
    );
    spawner.shutdown();
}

/// Whether the helper holds a blank whose zygote has ended (and the preparer is idle).
fn dead_zygote_blank(spawner: &Spawner) -> bool {
    preparer_idle(spawner)
        && helper_children(spawner)
            .into_iter()
            .any(|init| children_of(init).into_iter().any(ended))
}

#[tokio::test]
async fn zygotes_that_keep_dying_are_given_up() {
    let Some((_dir, task, spawner, mut exits, _layout)) = zygote_helper("dies") else {
        return; // no interpreter to be a zygote here
    };
    let served = ["LANG=C.UTF-8", "MARK=one"];
    let fresh = "fresh /var/task one C.UTF-8 hi from the task ['x']\n";
    assert_eq!(
        run_zygote_spec(&spawner, &mut exits, "g0", &task, &served).await,
        fresh
    );
    // Three times: a zygote blank is made, its zygote dies, the next function finds it
    // dead and starts on its own.
    for i in 1..=3 {
        wait_for("a blank whose zygote died", || dead_zygote_blank(&spawner));
        let out = run_zygote_spec(&spawner, &mut exits, &format!("g{i}"), &task, &served).await;
        assert_eq!(out, fresh);
    }
    // Then the pool stops making them: nothing is left or made once the preparer rests.
    wait_for("the preparer to rest", || preparer_idle(&spawner));
    assert!(
        helper_children(&spawner).is_empty(),
        "no more zygote blanks after three died"
    );
    assert_eq!(
        run_zygote_spec(&spawner, &mut exits, "g4", &task, &served).await,
        fresh
    );
    spawner.shutdown();
}

#[tokio::test]
async fn zygotes_start_ahead_and_take_on_the_spec_they_serve() {
    if !Path::new("/usr/bin/python3").exists() {
        return; // no interpreter to be a zygote here
    }
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("task");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("hello.txt"), "hi from the task\n").unwrap();
    let (spawner, mut exits, layout) = helper_with(dir.path(), 0, vec![zygote()]);
    assert!(
        zygote_processes(&spawner, false).is_empty(),
        "no zygote before a function that it serves"
    );
    let served = ["LANG=C.UTF-8", "MARK=one"];
    // The first such function starts on its own...
    let out = run_zygote_spec(&spawner, &mut exits, "z1", &task, &served).await;
    assert_eq!(
        out.trim(),
        "fresh /var/task one C.UTF-8 hi from the task ['x']",
        "{out}"
    );
    // ...and from then on a zygote waits for the next.
    wait_for("a zygote", || {
        zygote_processes(&spawner, true).len() == 1 && preparer_idle(&spawner)
    });
    let waiting = zygote_processes(&spawner, true)[0];
    let out = run_zygote_spec(
        &spawner,
        &mut exits,
        "z2",
        &task,
        &["LANG=C.UTF-8", "MARK=two"],
    )
    .await;
    // The zygote ran before the claim, then saw the function's root, code, environment and
    // an empty /tmp of its own (not the host's root, which it was kept at until the claim).
    assert_eq!(
        out,
        "zygote ready\nzygote /var/task two C.UTF-8 hi from the task ['x']\n"
    );
    wait_for("a new zygote", || {
        let z = zygote_processes(&spawner, true);
        z.len() == 1 && z[0] != waiting && preparer_idle(&spawner)
    });
    let waiting = zygote_processes(&spawner, true)[0];
    // A function that sets a variable the zygote reads only at start gets its own program.
    let out = run_zygote_spec(&spawner, &mut exits, "z3", &task, &["LANG=C", "MARK=three"]).await;
    assert_eq!(out.trim(), "fresh /var/task three C hi from the task ['x']");
    assert_eq!(
        zygote_processes(&spawner, true),
        [waiting],
        "the zygote is still waiting"
    );
    // A zygote that died before its claim: its blank is discarded, and the function
    // starts in a sandbox of its own.
    stratus_sandbox::kill(waiting as i32);
    wait_for("the zygote to die", || ended(waiting));
    let out = run_zygote_spec(&spawner, &mut exits, "z4", &task, &served).await;
    assert_eq!(out, "fresh /var/task one C.UTF-8 hi from the task ['x']\n");
    assert!(
        environment_cgroups(&layout).is_empty(),
        "cgroups left: {:?}",
        layout.list()
    );
    spawner.shutdown();
}

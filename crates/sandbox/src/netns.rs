//! The helper's one visit to a new sandbox's network namespace: the veth pair (with
//! networking), `lo` up, and the listener the server will accept the sandbox's Runtime API
//! calls on, bound inside that namespace.
//!
//! Runs in the helper or the preparer, between the `clone` of a blank and the go it gives
//! the child (see [`crate::parent_process`]). `setns` moves the calling thread: it must come
//! back to the host's namespace whatever happens, or every later sandbox would be built from
//! the wrong one; the process being single-threaded, nothing else runs meanwhile.
//! Depends on [`crate::net`] only.

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::AsFd;

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::err;
use crate::net::link_up;

/// Brings up `lo` in the sandbox's network namespace and binds `127.0.0.1:port` there.
/// The socket belongs to that namespace for good, wherever its descriptor travels.
pub(crate) fn listen_in_netns(
    pid: Pid,
    port: u16,
    host_netns: &File,
    slot: Option<u32>,
) -> Result<TcpListener, String> {
    if let Some(n) = slot {
        crate::net::create_pair(n, pid.as_raw())?;
        crate::net::configure(&crate::net::host_ifname(n), crate::net::addresses(n).0)?;
    }
    let ns = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| err("opening netns", e))?;
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| err("setns", e))?;
    let result = loopback_up()
        .and_then(|()| match slot {
            Some(n) => {
                let (host, ours) = crate::net::addresses(n);
                crate::net::configure("eth0", ours)?;
                crate::net::default_route(host, "eth0")
            }
            None => Ok(()),
        })
        .and_then(|()| {
            TcpListener::bind(("127.0.0.1", port)).map_err(|e| err("binding runtime API", e))
        });
    // Back home whatever happened; failing to return would poison every later spawn.
    nix::sched::setns(host_netns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| err("returning to host netns", e))?;
    let listener = result?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err("nonblocking", e))?;
    Ok(listener)
}

fn loopback_up() -> Result<(), String> {
    link_up("lo")
}

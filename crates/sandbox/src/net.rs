//! Outside network access for sandboxes, as Lambda gives by default: a veth pair per
//! sandbox (host end `stx<N>`, sandbox end `eth0`), a /30 from `10.233.0.0/16`, a default
//! route through the host end, and NAT on the host. The host's own addresses stay out of
//! reach (INPUT from `stx+` is dropped) and sandboxes cannot reach each other (FORWARD
//! between `stx+` is dropped).
//!
//! Links, addresses and routes are made with rtnetlink messages built here; the host-wide
//! forwarding and NAT rules with `iptables`, once per helper start.
//!
//! Runs in the helper and the preparer (the rules once, at the helper's start; a pair and its
//! addresses per blank, see `netns`). Every call acts on the calling thread's
//! network namespace. Depends on no other module.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

use crate::err;

/// The pool sandboxes' /30 networks come from.
pub const SUBNET: &str = "10.233.0.0/16";
/// How many sandboxes can have a network at once (/30s in a /16).
pub const SLOTS: u32 = 16_384;
const HOST_PREFIX: &str = "stx";

fn os_err(context: &str) -> String {
    format!("{context}: {}", io::Error::last_os_error())
}

/// The addresses of slot `n`: (host end, sandbox end).
pub fn addresses(n: u32) -> ([u8; 4], [u8; 4]) {
    let base = n * 4;
    let (hi, lo) = ((base >> 8) as u8, (base & 0xff) as u8);
    ([10, 233, hi, lo + 1], [10, 233, hi, lo + 2])
}

pub fn host_ifname(n: u32) -> String {
    format!("{HOST_PREFIX}{n}")
}

/// A slot whose host interface does not exist: free, since a pair vanishes with its
/// sandbox's network namespace. `next` is where the search starts (and goes on from).
pub fn free_slot(next: &mut u32) -> Option<u32> {
    for _ in 0..SLOTS {
        let n = *next;
        *next = (*next + 1) % SLOTS;
        if ifindex(&host_ifname(n)).is_err() {
            return Some(n);
        }
    }
    None
}

/// Enables forwarding and installs the NAT and isolation rules (idempotent).
pub fn prepare_host() -> Result<(), String> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| format!("ip_forward: {e}"))?;
    let any = format!("{HOST_PREFIX}+");
    let rules: [&[&str]; 5] = [
        &[
            "-t",
            "nat",
            "POSTROUTING",
            "-s",
            SUBNET,
            "!",
            "-d",
            SUBNET,
            "-j",
            "MASQUERADE",
        ],
        &["-t", "filter", "INPUT", "-i", &any, "-j", "DROP"],
        &[
            "-t", "filter", "FORWARD", "-i", &any, "-o", &any, "-j", "DROP",
        ],
        &["-t", "filter", "FORWARD", "-i", &any, "-j", "ACCEPT"],
        &[
            "-t",
            "filter",
            "FORWARD",
            "-o",
            &any,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ],
    ];
    for rule in rules {
        let (table, rest) = (&rule[..2], &rule[2..]);
        let (chain, spec) = (rest[0], &rest[1..]);
        let exists = Command::new("iptables")
            .args(table)
            .arg("-C")
            .arg(chain)
            .args(spec)
            .output()
            .map(|o| o.status.success())
            .map_err(|e| format!("running iptables: {e}"))?;
        if !exists {
            // Insert at the top, so a restrictive default policy does not shadow them.
            let out = Command::new("iptables")
                .args(table)
                .arg("-I")
                .arg(chain)
                .args(spec)
                .output()
                .map_err(|e| format!("running iptables: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "iptables {}: {}",
                    rule.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    Ok(())
}

// ---- rtnetlink ---------------------------------------------------------------------------

struct Msg {
    buf: Vec<u8>,
    /// Offsets of open nested attributes.
    nests: Vec<usize>,
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        let flags = flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16;
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf[8..12].copy_from_slice(&1u32.to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.raw(data);
    }

    fn begin(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
    }

    fn end(&mut self) {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// An `ifinfomsg` for interface `index` (0: new).
fn ifinfo(index: i32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Sends one request on a fresh NETLINK_ROUTE socket (of the calling thread's network
/// namespace) and waits for its acknowledgement.
fn request(msg: Vec<u8>) -> Result<(), String> {
    // SAFETY: plain socket(2); the result is checked and owned immediately.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(os_err("netlink socket"));
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sending a buffer we own.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(os_err("netlink send"));
    }
    let mut reply = [0u8; 4096];
    // SAFETY: receiving into a buffer we own, bounded by its length.
    let n = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 20 {
        return Err(os_err("netlink recv"));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind == libc::NLMSG_ERROR as u16 {
        let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if code != 0 {
            return Err(format!("netlink: {}", io::Error::from_raw_os_error(-code)));
        }
    }
    Ok(())
}

fn ifindex(name: &str) -> Result<i32, String> {
    let c = std::ffi::CString::new(name).map_err(|_| "bad interface name".to_string())?;
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(os_err(&format!("no interface {name}")));
    }
    Ok(i as i32)
}

/// Creates the veth pair: `stx<n>` here, `eth0` in the network namespace of `pid`.
pub fn create_pair(n: u32, pid: i32) -> Result<(), String> {
    const VETH_INFO_PEER: u16 = 1;
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut m = Msg::new(libc::RTM_NEWLINK, flags);
    m.raw(&ifinfo(0));
    m.attr(libc::IFLA_IFNAME, &cstr(&host_ifname(n)));
    m.begin(libc::IFLA_LINKINFO);
    m.attr(libc::IFLA_INFO_KIND, &cstr("veth"));
    m.begin(libc::IFLA_INFO_DATA);
    m.begin(VETH_INFO_PEER);
    m.raw(&ifinfo(0));
    m.attr(libc::IFLA_IFNAME, &cstr("eth0"));
    m.attr(libc::IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes());
    m.end();
    m.end();
    m.end();
    request(m.finish())
}

/// Gives interface `name` (in the calling thread's namespace) `addr/30` and brings it up.
pub fn configure(name: &str, addr: [u8; 4]) -> Result<(), String> {
    let index = ifindex(name)?;
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut m = Msg::new(libc::RTM_NEWADDR, flags);
    let mut ifa = [0u8; 8];
    ifa[0] = libc::AF_INET as u8;
    ifa[1] = 30;
    ifa[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    m.raw(&ifa);
    m.attr(libc::IFA_LOCAL, &addr);
    m.attr(libc::IFA_ADDRESS, &addr);
    request(m.finish())?;
    link_up(name)
}

/// Adds the default route through `gateway` (in the calling thread's namespace).
pub fn default_route(gateway: [u8; 4], dev: &str) -> Result<(), String> {
    let index = ifindex(dev)?;
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut m = Msg::new(libc::RTM_NEWROUTE, flags);
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
    let mut rt = [0u8; 12];
    rt[0] = libc::AF_INET as u8;
    rt[4] = libc::RT_TABLE_MAIN;
    rt[5] = libc::RTPROT_BOOT;
    rt[6] = libc::RT_SCOPE_UNIVERSE;
    rt[7] = libc::RTN_UNICAST;
    m.raw(&rt);
    m.attr(libc::RTA_GATEWAY, &gateway);
    m.attr(libc::RTA_OIF, &(index as u32).to_ne_bytes());
    request(m.finish())
}

/// Brings interface `name` up (in the calling thread's network namespace).
pub(crate) fn link_up(name: &str) -> Result<(), String> {
    // SAFETY: plain socket(2); the result is checked and owned immediately.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err("socket", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() {
        return Err(format!("interface name {name} too long"));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid, initialised ifreq we pass by pointer.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) };
    if rc < 0 {
        return Err(err(
            &format!("bringing up {name}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_distinct_slash_30s() {
        assert_eq!(addresses(0), ([10, 233, 0, 1], [10, 233, 0, 2]));
        assert_eq!(addresses(1), ([10, 233, 0, 5], [10, 233, 0, 6]));
        assert_eq!(addresses(64), ([10, 233, 1, 1], [10, 233, 1, 2]));
        assert_eq!(
            addresses(SLOTS - 1),
            ([10, 233, 255, 253], [10, 233, 255, 254])
        );
    }

    #[test]
    fn nested_attributes_carry_their_lengths() {
        let mut m = Msg::new(16, 0);
        m.begin(18);
        m.attr(1, b"veth\0");
        m.end();
        let b = m.finish();
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        // Nest header at 16: its length covers itself (4) and the 12-byte attribute inside.
        assert_eq!(u16::from_ne_bytes([b[16], b[17]]), 4 + 12);
        assert_eq!(u16::from_ne_bytes([b[20], b[21]]), 9);
    }
}

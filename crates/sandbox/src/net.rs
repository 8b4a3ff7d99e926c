//! Outside network access for sandboxes, as Lambda gives by default: a veth pair per
//! sandbox (host end `stx<N>`, sandbox end `eth0`), a /30 from `10.233.0.0/16`, a default
//! route through the host end, and NAT on the host. The host's own addresses stay out of
//! reach (INPUT from `stx+` is dropped), sandboxes cannot reach each other nor link-local
//! addresses, and the pair carries no IPv6 (see [`host_rules`] and [`disable_ipv6`]).
//!
//! Links, addresses and routes are made with rtnetlink messages built here; the host-wide
//! forwarding and NAT rules with `iptables`, in chains of Stratus's own, once per helper
//! start.
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

/// Whether slot `n`'s pair exists (it vanishes with its sandbox's network namespace, a
/// little after the sandbox ends).
pub(crate) fn pair_exists(n: u32) -> bool {
    ifindex(&host_ifname(n)).is_ok()
}

/// Stratus's own chains, and the built-in chain each is jumped to from (first thing there).
/// Every server on a host shares them: the same content, rebuilt whole at each helper's
/// start, never removed.
const CHAINS: [(&str, &str, &str); 3] = [
    ("filter", "INPUT", "STRATUS-IN"),
    ("filter", "FORWARD", "STRATUS-FWD"),
    ("nat", "POSTROUTING", "STRATUS-NAT"),
];

/// Link-local addresses (169.254.0.0/16): a cloud machine's metadata service, with its
/// credentials, answers there. Never a sandbox's business.
const LINK_LOCAL: &str = "169.254.0.0/16";

/// The rules, in `iptables-restore` form. Order matters and is checked by a unit test:
/// first verdict wins.
///
/// - `STRATUS-IN` (INPUT from a sandbox): everything dropped. A sandbox reaches the Stratus
///   API on its own loopback (the listener the helper bound inside its namespace, see
///   `netns`), never through the host, so no host address or port is open to it.
/// - `STRATUS-FWD` (forwarded traffic of sandboxes): a sandbox to another sandbox, to the
///   sandboxes' subnet (a slot whose pair is gone would otherwise route it out of the host)
///   or to a link-local address is dropped; then replies to sandboxes pass, anything else a
///   sandbox sends passes (the outside world), and anything else to a sandbox (a connection
///   from outside) is dropped. Traffic of no sandbox returns to FORWARD untouched.
/// - `STRATUS-NAT`: sandboxes' traffic leaving the subnet goes out as the host.
pub fn host_rules() -> String {
    let any = format!("{HOST_PREFIX}+");
    [
        "*filter".to_string(),
        ":STRATUS-IN - [0:0]".into(),
        ":STRATUS-FWD - [0:0]".into(),
        "-A STRATUS-IN -j DROP".into(),
        format!("-A STRATUS-FWD -i {any} -o {any} -j DROP"),
        format!("-A STRATUS-FWD -i {any} -d {SUBNET} -j DROP"),
        format!("-A STRATUS-FWD -i {any} -d {LINK_LOCAL} -j DROP"),
        format!("-A STRATUS-FWD -o {any} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-A STRATUS-FWD -i {any} -j ACCEPT"),
        format!("-A STRATUS-FWD -o {any} -j DROP"),
        "COMMIT".into(),
        "*nat".into(),
        ":STRATUS-NAT - [0:0]".into(),
        format!("-A STRATUS-NAT -s {SUBNET} ! -d {SUBNET} -j MASQUERADE"),
        "COMMIT".into(),
        String::new(),
    ]
    .join("\n")
}

/// The jump into `chain` from `builtin`, as `iptables` arguments after the chain's name.
fn jump_spec(builtin: &str, chain: &str) -> Vec<String> {
    let mut spec = Vec::new();
    if builtin == "INPUT" {
        spec.extend(["-i".to_string(), format!("{HOST_PREFIX}+")]);
    }
    spec.extend(["-j".to_string(), chain.to_string()]);
    spec
}

fn iptables(args: &[&str]) -> Result<std::process::Output, String> {
    Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("running iptables: {e}"))
}

/// Enables forwarding and installs the NAT and isolation rules (idempotent, and safe with
/// other servers running on the host: see [`host_rules`]).
///
/// The chains are (re)built in one `iptables-restore --noflush` transaction, which empties
/// and refills only them, so a server starting while others run never leaves a moment
/// without rules. Each jump is made the first rule of its built-in chain, so no rule put
/// there by someone else (a permissive FORWARD rule, another tool's) decides a sandbox's
/// traffic first; nothing is ever deleted (rules of older versions, left below the jump,
/// see no sandbox traffic: every packet of a sandbox gets a verdict in our chains).
pub fn prepare_host() -> Result<(), String> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| format!("ip_forward: {e}"))?;
    let mut restore = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running iptables-restore: {e}"))?;
    if let Some(mut stdin) = restore.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(host_rules().as_bytes())
            .map_err(|e| format!("iptables-restore: {e}"))?;
    }
    let out = restore
        .wait_with_output()
        .map_err(|e| format!("iptables-restore: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "iptables-restore: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for (table, builtin, chain) in CHAINS {
        let spec = jump_spec(builtin, chain);
        let listing = iptables(&["-t", table, "-S", builtin])?;
        let first = String::from_utf8_lossy(&listing.stdout)
            .lines()
            .find(|l| l.starts_with("-A "))
            .map(str::to_owned);
        let wanted = format!("-A {builtin} {}", spec.join(" "));
        if first.as_deref() == Some(wanted.as_str()) {
            continue;
        }
        let mut args = vec!["-t", table, "-I", builtin, "1"];
        args.extend(spec.iter().map(String::as_str));
        let out = iptables(&args)?;
        if !out.status.success() {
            return Err(format!(
                "iptables {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// Turns IPv6 off on interface `name` (of the calling thread's network namespace), before
/// it is up: sandboxes' network is IPv4 only, and a link-local IPv6 address on both ends of
/// a pair would let a sandbox reach the host's services listening on `::` past the IPv4
/// rules. Nothing to do where IPv6 is not configured.
pub(crate) fn disable_ipv6(name: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{path}: {e}")),
    }
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
    disable_ipv6(name)?;
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
#[allow(clippy::unwrap_used)]
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
    fn rules_come_in_the_tested_order() {
        let expected = "\
*filter
:STRATUS-IN - [0:0]
:STRATUS-FWD - [0:0]
-A STRATUS-IN -j DROP
-A STRATUS-FWD -i stx+ -o stx+ -j DROP
-A STRATUS-FWD -i stx+ -d 10.233.0.0/16 -j DROP
-A STRATUS-FWD -i stx+ -d 169.254.0.0/16 -j DROP
-A STRATUS-FWD -o stx+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A STRATUS-FWD -i stx+ -j ACCEPT
-A STRATUS-FWD -o stx+ -j DROP
COMMIT
*nat
:STRATUS-NAT - [0:0]
-A STRATUS-NAT -s 10.233.0.0/16 ! -d 10.233.0.0/16 -j MASQUERADE
COMMIT
";
        assert_eq!(host_rules(), expected);
        // Every drop of a sandbox's own traffic comes before the accept that would let it
        // through: the bug this order fixes had the accept first.
        let lines: Vec<&str> = expected.lines().collect();
        let accept = lines
            .iter()
            .position(|l| *l == "-A STRATUS-FWD -i stx+ -j ACCEPT")
            .unwrap();
        for drop in lines
            .iter()
            .filter(|l| l.starts_with("-A STRATUS-FWD -i stx+ ") && l.ends_with("DROP"))
        {
            assert!(
                lines.iter().position(|l| l == drop).unwrap() < accept,
                "{drop}"
            );
        }
    }

    #[test]
    fn jumps_cover_only_sandbox_input() {
        assert_eq!(
            jump_spec("INPUT", "STRATUS-IN"),
            ["-i", "stx+", "-j", "STRATUS-IN"]
        );
        assert_eq!(jump_spec("FORWARD", "STRATUS-FWD"), ["-j", "STRATUS-FWD"]);
        assert_eq!(
            jump_spec("POSTROUTING", "STRATUS-NAT"),
            ["-j", "STRATUS-NAT"]
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

//! The root filesystem a function sees.
//!
//! A template directory, built once per server start, holds the skeleton: mount points,
//! a minimal `/etc` (no host secrets: `passwd`, `group`, `hosts`, `resolv.conf`...), device
//! node placeholders. Each sandbox bind-mounts the template onto itself in its private mount
//! namespace, mounts the system directories read-only over the mount points, adds its code,
//! `/tmp`, `/dev` and `/proc`, pivots into it and makes it read-only.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Host paths shown read-only, when they exist on the host. Only what runtimes need:
/// programs and libraries, TLS roots, time zones, the dynamic linker's cache.
pub const SYSTEM_PATHS: &[&str] = &[
    "/usr",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
];

/// Device nodes bound from the host.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Top-level entries that are symlinks into `/usr` on merged-/usr hosts.
const MERGED: &[&str] = &["bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// Builds (or refreshes) the template at `root`. Safe to call on every start.
pub fn build_template(root: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    fs::create_dir_all(root)?;
    // `var/task/lib` is hidden by the function's code once it is bound over `var/task`.
    // It is here for zygotes, which start before that bind: the dynamic linker gives up for
    // good on a directory of LD_LIBRARY_PATH it once found missing, and the package's lib/
    // only appears at the claim.
    for d in [
        "usr",
        "etc",
        "var/task/lib",
        "var/runtime",
        "opt",
        "tmp",
        "proc",
        "dev/shm",
        "home",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    for name in MERGED {
        let host = Path::new("/").join(name);
        let ours = root.join(name);
        if let Ok(target) = fs::read_link(&host) {
            if fs::read_link(&ours).ok().as_ref() != Some(&target) {
                let _ = fs::remove_file(&ours);
                symlink(&target, &ours)?;
            }
        } else if host.is_dir() {
            fs::create_dir_all(&ours)?;
        }
    }
    for path in SYSTEM_PATHS {
        ensure_mount_point(root, Path::new(path))?;
    }
    for dev in DEVICES {
        touch(&root.join("dev").join(dev))?;
    }
    for (link, target) in [
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        let p = root.join(link);
        if fs::symlink_metadata(&p).is_err() {
            symlink(target, &p)?;
        }
    }
    let files = [
        (
            "etc/passwd",
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\n\
                 sbx_user1051:x:{uid}:{gid}::/home/sbx_user1051:/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/:/sbin/nologin\n"
            ),
        ),
        (
            "etc/group",
            format!("root:x:0:\nsbx_user1051:x:{gid}:\nnobody:x:65534:\n"),
        ),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n".to_owned(),
        ),
        ("etc/resolv.conf", host_resolv_conf()),
        ("etc/hostname", "stratus\n".to_owned()),
    ];
    for (path, content) in files {
        let p = root.join(path);
        if fs::read_to_string(&p).ok().as_deref() != Some(content.as_str()) {
            // A mount point may sit here from SYSTEM_PATHS; our content wins.
            let _ = fs::remove_file(&p);
            fs::write(&p, content)?;
        }
    }
    Ok(())
}

/// Where systemd-resolved lists the upstream servers its stub (127.0.0.53) forwards to.
const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

fn host_resolv_conf() -> String {
    let etc = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (conf, reachable) =
        sandbox_resolv_conf(&etc, || fs::read_to_string(RESOLVED_UPSTREAMS).ok());
    if !reachable {
        tracing::warn!(
            "functions have no DNS: /etc/resolv.conf (and systemd-resolved's upstream list, \
             if any) names no IPv4 name server off the host's loopback, and sandboxes reach \
             only those"
        );
    }
    conf
}

/// The `resolv.conf` functions get, from the host's (`etc`): its `nameserver`, `search` and
/// `options` lines, keeping only the name servers a sandbox can reach: IPv4 (its network is
/// IPv4 only; an unreachable server would also take one of glibc's three places, and a
/// link-local one each lookup's timeout) and not on loopback (a sandbox's loopback is its
/// own, the host's out of reach). When the host names no such server, as behind
/// systemd-resolved's stub (127.0.0.53), the servers that stub forwards to are used instead
/// (`upstreams`, read only then). Also says whether any name server is left.
fn sandbox_resolv_conf(etc: &str, upstreams: impl FnOnce() -> Option<String>) -> (String, bool) {
    fn kept(conf: &str) -> Vec<&str> {
        conf.lines()
            .map(str::trim)
            .filter(|l| {
                let mut words = l.split_whitespace();
                match words.next() {
                    Some("nameserver") => words
                        .next()
                        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
                        .is_some_and(|ip| !ip.is_loopback()),
                    Some("search" | "options") => true,
                    _ => false,
                }
            })
            .collect()
    }
    fn has_server(lines: &[&str]) -> bool {
        lines.iter().any(|l| l.starts_with("nameserver"))
    }
    fn joined(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
    let lines = kept(etc);
    // Reachable servers, or none named at all (a host without DNS is not ours to mend).
    if has_server(&lines) || !etc.lines().any(|l| l.trim().starts_with("nameserver")) {
        return (joined(&lines), true);
    }
    if let Some(up) = upstreams() {
        let up_lines = kept(&up);
        if has_server(&up_lines) {
            return (joined(&up_lines), true);
        }
    }
    (joined(&lines), false)
}

fn touch(p: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(p).is_err() {
        fs::write(p, b"")?;
    }
    Ok(())
}

/// Makes `inside` (an absolute sandbox path) exist in the template as a directory or an
/// empty file, matching what `host` is, so something can be mounted on it.
pub fn ensure_mount_point_for(
    root: &Path,
    host: &Path,
    inside: &Path,
) -> std::io::Result<Option<PathBuf>> {
    let Ok(meta) = fs::metadata(host) else {
        return Ok(None);
    };
    let rel = inside.strip_prefix("/").unwrap_or(inside);
    let p = root.join(rel);
    if meta.is_dir() {
        fs::create_dir_all(&p)?;
    } else {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        touch(&p)?;
    }
    Ok(Some(p))
}

fn ensure_mount_point(root: &Path, path: &Path) -> std::io::Result<()> {
    ensure_mount_point_for(root, path, path).map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn functions_get_the_hosts_name_servers_but_none_on_its_loopback() {
        let none = || -> Option<String> { panic!("upstreams read without a local stub") };
        // Plain servers pass as they are, comments and other keywords go.
        let (conf, ok) = sandbox_resolv_conf(
            "# generated\nnameserver 10.255.255.53\nsearch example.org\noptions ndots:2\nsortlist 10.0.0.0\n",
            none,
        );
        assert!(ok);
        assert_eq!(
            conf,
            "nameserver 10.255.255.53\nsearch example.org\noptions ndots:2\n"
        );
        // Loopback and IPv6 servers beside a reachable one are dropped.
        let (conf, ok) = sandbox_resolv_conf(
            "nameserver 127.0.0.1\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver 2001:db8::1\nnameserver 192.0.2.1\n",
            none,
        );
        assert!(ok);
        assert_eq!(conf, "nameserver 192.0.2.1\n");
        // systemd-resolved's stub: its upstream servers instead.
        let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let (conf, ok) = sandbox_resolv_conf(stub, || {
            Some("nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch lan\n".into())
        });
        assert!(ok);
        assert_eq!(conf, "nameserver 192.0.2.53\nsearch lan\n");
        // A stub with nothing behind it: no name server at all, and it says so.
        let (conf, ok) = sandbox_resolv_conf(stub, || None);
        assert!(!ok);
        assert_eq!(conf, "options edns0 trust-ad\nsearch lan\n");
        let (_, ok) = sandbox_resolv_conf(stub, || Some("nameserver 127.0.0.1\n".into()));
        assert!(!ok);
        let (_, ok) = sandbox_resolv_conf("nameserver 2001:db8::53\n", || None);
        assert!(!ok, "IPv6 only: out of a sandbox's reach");
        // A host with no name server at all is not a loopback problem.
        assert_eq!(sandbox_resolv_conf("", none), (String::new(), true));
    }

    #[test]
    fn template_has_a_minimal_etc_and_mount_points() {
        let d = tempfile::tempdir().unwrap();
        build_template(d.path(), 993, 990).unwrap();
        // Building twice is fine.
        build_template(d.path(), 993, 990).unwrap();
        let passwd = fs::read_to_string(d.path().join("etc/passwd")).unwrap();
        assert!(passwd.contains("sbx_user1051:x:993:990"));
        assert!(!d.path().join("etc/shadow").exists());
        assert!(d.path().join("usr").is_dir());
        assert!(d.path().join("var/task").is_dir());
        assert!(d.path().join("dev/null").is_file());
        assert_eq!(
            fs::read_link(d.path().join("dev/fd")).unwrap(),
            PathBuf::from("/proc/self/fd")
        );
    }
}

//! The seccomp filter every function process runs under: a deny list of what functions
//! never need (mounts, namespaces, tracing, kernel modules, kexec, bpf, keyrings, clocks,
//! io_uring, NUMA placement...), `personality` but for the values Docker also allows, and
//! sockets of the kernel's crypto API and of vsock. Denied calls fail with `EPERM`; `clone3`
//! fails with `ENOSYS`, because its flags sit behind a pointer the filter cannot read, and
//! libc then falls back to `clone`, whose flags it can; so do x32 system calls on x86_64
//! (the same calls under other numbers, which a deny list by number would let through).
//!
//! `docs/seccomp.md` compares this filter with Docker's default profile, difference by
//! difference.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    #[error("compiling the seccomp filter: {0}")]
    Compile(String),
    #[error("installing the seccomp filter: {0}")]
    Install(#[from] seccompiler::Error),
}

/// System calls no function needs. Denied whatever their arguments.
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_mount_setattr,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_fanotify_init,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    // io_uring: a second system call interface that seccomp cannot see into, and the
    // source of many kernel exploits; Docker refuses it since 2023, Google's servers too.
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_lookup_dcookie,
    libc::SYS_quotactl_fd,
    libc::SYS_process_madvise,
    // NUMA placement: the host's, not a function's, to decide (Docker asks CAP_SYS_NICE).
    libc::SYS_mbind,
    libc::SYS_set_mempolicy,
    libc::SYS_set_mempolicy_home_node,
    libc::SYS_migrate_pages,
    libc::SYS_move_pages,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ustat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_sysfs,
    #[cfg(target_arch = "x86_64")]
    libc::SYS__sysctl,
];

/// `personality` values allowed (Docker's list): Linux, with `UNAME26` and/or
/// `PER_LINUX32`-style bit 8, and the query `0xffffffff`. Others, `ADDR_NO_RANDOMIZE` (ASLR
/// off) first, are refused.
const PERSONALITIES: &[u32] = &[0, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Socket families refused: the kernel's crypto API (`AF_ALG`, a long list of kernel bugs,
/// and nothing a runtime uses: they do their cryptography in user space) and vsock
/// (`AF_VSOCK`, not confined by network namespaces: on a virtual machine it reaches the
/// hypervisor's services).
const SOCKET_FAMILIES: &[i32] = &[libc::AF_ALG, libc::AF_VSOCK];

/// x32 system calls are numbered from here (x86_64 kernels built with `X86_X32_ABI`).
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: &[i32] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

fn arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        TargetArch::x86_64
    }
}

fn compile(filter: SeccompFilter) -> Result<BpfProgram, SeccompError> {
    BpfProgram::try_from(filter).map_err(|e| SeccompError::Compile(e.to_string()))
}

/// The two programs to install, in order.
pub fn programs() -> Result<Vec<BpfProgram>, SeccompError> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|nr| (*nr, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let bit = *flag as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            )?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    deny.insert(libc::SYS_clone, clone_rules);
    deny.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(
            PERSONALITIES
                .iter()
                .map(|v| {
                    SeccompCondition::new(
                        0,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::Ne,
                        u64::from(*v),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?,
        )?],
    );
    deny.insert(
        libc::SYS_socket,
        SOCKET_FAMILIES
            .iter()
            .map(|f| {
                SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    *f as u64,
                )?])
            })
            .collect::<Result<Vec<_>, _>>()?,
    );
    let deny = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )?;
    let mut programs = vec![compile(deny)?, compile(clone3)?];
    #[cfg(target_arch = "x86_64")]
    programs.push(x32_refused());
    Ok(programs)
}

/// A program that fails every x32 system call with `ENOSYS`, as a kernel without x32
/// does. The other programs check the architecture (x32 calls come as x86_64) and then
/// the number: an x32 number is another number, which a deny list would allow.
#[cfg(target_arch = "x86_64")]
fn x32_refused() -> BpfProgram {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JMP_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        // The system call number is at offset 0 of `struct seccomp_data`.
        op(BPF_LD_W_ABS, 0, 0, 0),
        op(BPF_JMP_JSET_K, 0, 1, X32_SYSCALL_BIT),
        op(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

/// Installs `programs` on the calling thread. `no_new_privs` must already be set.
pub fn install(programs: &[BpfProgram]) -> Result<(), SeccompError> {
    for p in programs {
        seccompiler::apply_filter(p)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles() {
        let progs = programs().unwrap();
        assert_eq!(
            progs.len(),
            if cfg!(target_arch = "x86_64") { 3 } else { 2 }
        );
        assert!(progs[0].len() > DENIED.len());
    }

    /// Runs `probe` in a forked child under the filter; its exit code is what it returns.
    fn under_filter(probe: fn() -> i32) -> i32 {
        let progs = programs().unwrap();
        // SAFETY: the child only makes system calls (no allocation, no locks) and leaves
        // through `_exit`; the programs were compiled before the fork.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if install(&progs).is_err() {
                    libc::_exit(99);
                }
                libc::_exit(probe());
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            assert!(libc::WIFEXITED(status), "probe died: {status}");
            libc::WEXITSTATUS(status)
        }
    }

    /// The errno of a failed call, 0 on success.
    fn errno_of(rc: libc::c_long) -> i32 {
        if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        } else {
            0
        }
    }

    #[test]
    fn io_uring_is_refused() {
        let code = under_filter(|| {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_setup with a zeroed params buffer of the kernel's size.
            errno_of(unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) })
        });
        assert_eq!(code, libc::EPERM);
    }

    #[test]
    fn personality_allows_only_harmless_values() {
        let query = under_filter(|| {
            // SAFETY: the query form changes nothing.
            errno_of(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) })
        });
        assert_eq!(query, 0);
        let no_aslr = under_filter(|| {
            // SAFETY: in a throwaway child; refused anyway.
            errno_of(unsafe { libc::syscall(libc::SYS_personality, 0x0040000u64) })
        });
        assert_eq!(no_aslr, libc::EPERM);
    }

    #[test]
    fn crypto_and_vsock_sockets_are_refused() {
        let inet = under_filter(|| {
            // SAFETY: plain socket(2) in a throwaway child.
            errno_of(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) } as libc::c_long)
        });
        assert_eq!(inet, 0);
        for probe in [
            (|| {
                // SAFETY: as above.
                errno_of(
                    unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) } as libc::c_long,
                )
            }) as fn() -> i32,
            || {
                // SAFETY: as above.
                errno_of(
                    unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) } as libc::c_long,
                )
            },
        ] {
            assert_eq!(under_filter(probe), libc::EPERM);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_calls_fail_as_without_x32() {
        let code = under_filter(|| {
            // SAFETY: x32 getpid: no arguments, no effect.
            errno_of(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) })
        });
        assert_eq!(code, libc::ENOSYS);
    }
}

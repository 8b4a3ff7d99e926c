//! Descriptor plumbing for the sandbox's pipes: the length-prefixed messages that carry a
//! spec (from the helper to a blank's init at its claim, and from the init on to its zygote),
//! and closing inherited descriptors.
//!
//! Runs in the helper ([`send_message`], at the claim) and in a sandbox's init (all of it:
//! the init reads its spec, passes it on to its zygote, and closes what it inherited).
//! [`read_message`] and [`close_all_but`] take raw descriptor numbers: the init's inherited
//! descriptors belong to no Rust value (they are the `clone`'s copies of the helper's, which
//! the init closes by hand), so nothing here may wrap them in a type that closes on drop.
//! Depends on no other module.

use std::fs::File;
use std::io::Write;
use std::os::fd::RawFd;

/// Writes `msg` to `to` as one length-prefixed message (a 4-byte little-endian length, then
/// the bytes), as [`read_message`] reads it.
pub(crate) fn send_message(to: &mut File, msg: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_le_bytes();
    to.write_all(&len).and_then(|()| to.write_all(msg))
}

/// [`send_message`] on a socket, with descriptor `fd` (if any) passed along with the length.
pub(crate) fn send_message_with_fd(
    to: &mut File,
    msg: &[u8],
    fd: Option<RawFd>,
) -> std::io::Result<()> {
    let Some(fd) = fd else {
        return send_message(to, msg);
    };
    use std::os::fd::AsRawFd;
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_le_bytes();
    let fds = [fd];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&len)];
    let sent = nix::sys::socket::sendmsg::<()>(
        to.as_raw_fd(),
        &iov,
        &cmsg,
        nix::sys::socket::MsgFlags::empty(),
        None,
    )?;
    if sent != len.len() {
        to.write_all(&len[sent..])?;
    }
    to.write_all(msg)
}

/// A message and the descriptor that came with it, if any.
pub(crate) type WithFd = (Vec<u8>, Option<RawFd>);

/// [`read_message`] from a socket, with the descriptor passed along with it, if any
/// (close-on-exec).
pub(crate) fn read_message_with_fd(fd: RawFd) -> Result<Option<WithFd>, String> {
    let mut len = [0u8; 4];
    let mut passed = None;
    let got;
    {
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut len)];
        let msg = loop {
            match nix::sys::socket::recvmsg::<()>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ENOTSOCK) => {
                    return read_message(fd).map(|m| m.map(|m| (m, None)));
                }
                Err(_) => return Ok(None),
                Ok(m) => break m,
            }
        };
        got = msg.bytes;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                    passed = fds.first().copied();
                }
            }
        }
    }
    if got == 0 {
        return Ok(None);
    }
    read_exact(fd, &mut len[got..]).map_err(|()| "spec cut short".to_string())?;
    let mut msg = vec![0u8; u32::from_le_bytes(len) as usize];
    read_exact(fd, &mut msg).map_err(|()| "spec cut short".to_string())?;
    Ok(Some((msg, passed)))
}

/// Fills `buf` from `fd`; `Err` at end of file.
pub(crate) fn read_exact(fd: RawFd, buf: &mut [u8]) -> Result<(), ()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: reading into the unfilled tail of a buffer we own, from an inherited
        // descriptor.
        let n = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        match n {
            n if n > 0 => done += n as usize,
            n if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Err(()),
        }
    }
    Ok(())
}

/// One length-prefixed message from `fd`; `Ok(None)` at end of file before it starts.
pub(crate) fn read_message(fd: RawFd) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    if read_exact(fd, &mut len).is_err() {
        return Ok(None);
    }
    let mut msg = vec![0u8; u32::from_le_bytes(len) as usize];
    read_exact(fd, &mut msg).map_err(|()| "spec cut short".to_string())?;
    Ok(Some(msg))
}

/// Closes every descriptor from 3 up except `keep`.
pub(crate) fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    let mut low = 3u32;
    for fd in keep.iter().copied().chain([u32::MAX]) {
        if fd > low {
            // SAFETY: close_range on a range of our own descriptor table, none of which the
            // init uses.
            let rc = unsafe { libc::syscall(libc::SYS_close_range, low, fd - 1, 0u32) };
            if rc != 0 {
                // No close_range (kernels before 5.9): one descriptor at a time, up to the
                // limit the helper runs with.
                let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                    .map_or(4096, |(soft, _)| soft.min(1 << 20)) as u32;
                for n in low..fd.min(max) {
                    // SAFETY: closing descriptors of our own table that the init does not use.
                    unsafe {
                        libc::close(n as RawFd);
                    }
                }
            }
        }
        low = low.max(fd.saturating_add(1));
    }
}

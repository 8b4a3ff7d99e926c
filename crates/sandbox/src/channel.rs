//! The channels between Stratus's processes: `SOCK_SEQPACKET` socket pairs carrying one JSON
//! message per packet, with descriptors passed alongside by `SCM_RIGHTS`. The server talks
//! to the helper over one ([`crate::spawner`] and [`crate::helper`]), the helper to its
//! preparer over another ([`crate::pool`]).
//!
//! Runs in the server, the helper and the preparer; never in a sandbox. Depends on no other
//! module: what the messages mean is the caller's business.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// The largest message the server and the helper exchange.
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;

/// What can go wrong talking to the sandbox helper, or in it.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("sandbox helper I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("sandbox helper: {0}")]
    Sys(#[from] nix::Error),
    #[error("sandbox helper protocol: {0}")]
    Protocol(String),
    #[error("the sandbox helper has stopped")]
    Gone,
}

pub(crate) fn send(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
    fds: &[RawFd],
) -> Result<(), HelperError> {
    send_with(sock, msg, fds, MsgFlags::empty()).map(|_| ())
}

/// Like [`send`] without descriptors, but returns `Ok(false)` instead of waiting when the
/// socket has no room (the helper is behind): an async thread must not block on it.
pub(crate) fn try_send(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
) -> Result<bool, HelperError> {
    send_with(sock, msg, &[], MsgFlags::MSG_DONTWAIT)
}

fn send_with(
    sock: BorrowedFd<'_>,
    msg: &impl serde::Serialize,
    fds: &[RawFd],
    flags: MsgFlags,
) -> Result<bool, HelperError> {
    let bytes = serde_json::to_vec(msg).map_err(|e| HelperError::Protocol(e.to_string()))?;
    let iov = [IoSlice::new(&bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL | flags,
            None,
        ) {
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) if flags.contains(MsgFlags::MSG_DONTWAIT) => {
                return Ok(false);
            }
            Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => {
                return Err(HelperError::Gone);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message; `Ok(None)` at end of stream.
pub(crate) fn recv<T: serde::de::DeserializeOwned>(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<Option<(T, Vec<OwnedFd>)>, HelperError> {
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!([RawFd; 8]);
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: SCM_RIGHTS hands us new descriptors that nobody else owns.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECONNRESET) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg =
        serde_json::from_slice(&buf[..n]).map_err(|e| HelperError::Protocol(e.to_string()))?;
    Ok(Some((msg, fds)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn try_send_says_when_the_socket_is_full_instead_of_waiting() {
        let (a, b) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let msg = "x".repeat(4096);
        let mut sent = 0;
        while try_send(a.as_fd(), &msg).unwrap() {
            sent += 1;
            assert!(sent < 100_000, "the socket never filled");
        }
        assert!(sent > 0);
        // Room again once the other side reads one message.
        let mut buf = vec![0u8; 8192];
        let got: Option<(String, Vec<OwnedFd>)> = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(got.unwrap().0, msg);
        assert!(try_send(a.as_fd(), &msg).unwrap());
    }
}

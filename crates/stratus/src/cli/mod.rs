//! The `stratus` commands for people, as clients of a running server: `invoke` runs a
//! function, `logs` reads (and follows) its logs. They find the server and credentials the
//! way the AWS tools do ([`client`]) and speak the same wire as the AWS CLI.
//!
//! Exit status: 0 when the command did what was asked, 1 when the invoked function failed,
//! 2 when the request could not be made or the API refused it.

pub mod client;
pub mod invoke;
pub mod logs;

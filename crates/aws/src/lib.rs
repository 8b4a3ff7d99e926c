//! The vocabulary every Stratus service shares.
//!
//! [`Scope`] (the account and region a server answers for), [`Arn`] parsing and building,
//! [`Page`] for paginated listings, one clock ([`clock`]) with the time formats AWS APIs
//! use, request and resource ids ([`ids`]), and the traits through which one service
//! reaches another without depending on it ([`LogSink`] to write log events,
//! [`FunctionInvoker`] to run a function, [`Meter`] to record an invocation's usage,
//! [`Authorizer`] to ask whether a caller may act): the binary wires each trait to the
//! service that provides it.
//!
//! Invariant: no HTTP, no wire format, no storage, and no service's own types. A service
//! crate depends on this one and on the store, never on another service's crate.

pub mod arn;
pub mod auth;
pub mod clock;
pub mod ids;
mod invoke;
mod logs;
mod page;
pub mod usage;

pub use arn::{Arn, ArnError};
pub use auth::{Access, AllowAll, Authorizer, Denied, RoleSessions, TemporaryCredentials};
pub use invoke::{
    BoxFuture, FunctionCall, FunctionInvoker, FunctionResponse, FunctionResult, InvocationType,
    InvokeFailure, ServiceSource,
};
pub use logs::{LogSink, LogWriter};
pub use page::Page;
pub use usage::{InvocationRecord, Meter, Outcome};

/// The account and region a server answers for. Every ARN it makes carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub region: String,
    pub account_id: String,
}

impl Scope {
    /// `arn:aws:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        Arn {
            partition: "aws".into(),
            service: service.into(),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            resource: resource.into(),
        }
        .to_string()
    }
}

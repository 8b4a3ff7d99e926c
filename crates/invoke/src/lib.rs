//! Invoke, and the execution environments Lambda functions run in.
//!
//! [`Functions`] is the one entry point through which a function is invoked, by Lambda's
//! API or, through [`stratus_aws::FunctionInvoker`], by any other service: resolution,
//! state checks, the asynchronous queue, admission.
//!
//! Owns the life of an environment: planning its sandbox from a function's configuration
//! ([`launch`]), creating it through the sandbox helper, the Runtime API's state machine
//! ([`RuntimeEndpoint`]), dispatching invocations with their deadline, reuse of idle
//! environments, and the function's logs ([`logs`]) framed by START/END/REPORT lines.
//!
//! Invariant: no HTTP here. The API crate serves each environment's [`RuntimeEndpoint`] over
//! HTTP on the listener the sandbox helper created inside the environment's network
//! namespace; this crate sees only typed calls.

mod endpoint;
mod environment;
mod functions;
mod invoker;
pub mod launch;
pub mod limits;
mod logs;
mod output;
mod provisioner;
pub mod queue;
mod report;
mod request;

pub use endpoint::{
    Invocation, MAX_RESPONSE_BYTES, RuntimeApiError, RuntimeEndpoint, RuntimeEvent,
};
pub use environment::EnvKey;
pub use functions::{CallError, Functions, Invoked, MAX_SYNC_PAYLOAD};
pub use invoker::{Admission, Invoker, InvokerOptions, ServeFn};
pub use launch::LaunchContext;
pub use limits::{Freed, Throttle};
pub use provisioner::Provisioner;
pub use queue::{AsyncQueue, MAX_ASYNC_PAYLOAD, QueueError, QueueOptions};
pub use request::{Code, InvokeError, InvokeRequest, InvokeResult};

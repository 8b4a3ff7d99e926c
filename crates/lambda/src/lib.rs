//! The Lambda function service.
//!
//! Owns what a function *is*: its configuration and its validation against Lambda's quotas,
//! its code package (checked, stored content-addressed, unpacked for execution), published
//! versions, tags, and the state machine `Pending → Active` / `InProgress → Successful`.
//!
//! It takes and returns typed values ([`CreateFunction`], [`FunctionConfig`], [`LambdaError`]).
//! Invariant: nothing here knows HTTP, JSON wire shapes or AWS error codes; the API crate maps
//! these types to the wire. Persistence goes through `stratus_store` traits only.

mod aliases;
mod code;
mod concurrency;
mod error;
mod event_config;
mod model;
mod names;
mod provisioned;
mod runtimes;
mod service;
mod validate;
mod versions;

pub use aliases::{AliasPage, AliasView, CreateAlias, UpdateAlias};
pub use code::{CodePackage, MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES};
pub use concurrency::MIN_UNRESERVED;
pub use error::LambdaError;
pub use event_config::{
    DEFAULT_MAX_EVENT_AGE_SECONDS, DEFAULT_MAX_RETRIES, EventInvokeConfig, EventInvokeConfigInput,
};
pub use model::{
    AccountSettings, CreateFunction, FunctionConfig, FunctionState, FunctionView, LastUpdateStatus,
    ListPage, UpdateCode, UpdateConfig,
};
pub use names::{FunctionRef, Scope};
pub use provisioned::ProvisionedConfig;
pub use runtimes::{RuntimeCatalog, RuntimeInfo, RuntimeKind};
pub use service::{DEFAULT_CONCURRENT_EXECUTIONS, FunctionService, ServiceOptions};
pub use versions::{PublishVersion, VersionsPage};

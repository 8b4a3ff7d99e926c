//! The Lambda function service.
//!
//! Owns what a function *is*: its configuration and its validation against Lambda's quotas,
//! its code package (checked, stored content-addressed, unpacked for execution), published
//! versions, tags, resource-based policies, and the state machine `Pending → Active` /
//! `InProgress → Successful`.
//!
//! It takes and returns typed values ([`CreateFunction`], [`FunctionConfig`], [`LambdaError`]).
//! Invariant: nothing here knows HTTP, JSON wire shapes or AWS error codes; the API crate maps
//! these types to the wire. Persistence goes through `stratus_store` traits only.
//!
//! Module graph. A layer uses only layers below it (any of them, not just the next), so no
//! module uses one that uses it:
//!
//! ```text
//! operations   functions  preparation  versions  aliases  tags  account  layers
//!              concurrency  provisioned  event_config  permissions
//!                   │ (each adds an `impl FunctionService` block)
//!                   ▼
//! the type     service: FunctionService, Inner, ServiceOptions, the constructor, the write
//!                   │   lock, load / view / not_found, from_memory
//!                   ▼
//! ground floor records: table names, `$LATEST`, keys, encode / decode, digest_of,
//!                   │   new_revision, now_ms, page_size, is_version_number, needs_preparation
//!                   ▼
//! leaves       model  names  code  runtimes  validate  error
//! ```
//!
//! `test_support` (unit tests only: a service over a temporary directory) sits beside the
//! operations and uses `service` and `records`.
//!
//! The operation modules meet only through `FunctionService` methods (creating a function
//! calls `snapshot` in `versions`, deleting one calls `alias_delete_ops` in `aliases`), never
//! through each other's free functions or constants: whatever two of them share lives in
//! `records`. The constructor starts the preparation worker and reads the reserved
//! concurrency total through methods too, so `service` imports no operation module.

mod account;
mod aliases;
mod code;
mod concurrency;
mod error;
mod event_config;
mod functions;
mod layers;
mod model;
mod names;
mod permissions;
mod preparation;
mod provisioned;
mod records;
mod runtimes;
mod service;
mod tags;
#[cfg(test)]
mod test_support;
mod validate;
mod versions;

pub use aliases::{AliasPage, AliasView, CreateAlias, UpdateAlias};
pub use code::{CodePackage, MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES};
pub use concurrency::MIN_UNRESERVED;
pub use error::LambdaError;
pub use event_config::{
    DEFAULT_MAX_EVENT_AGE_SECONDS, DEFAULT_MAX_RETRIES, EventInvokeConfig, EventInvokeConfigInput,
};
pub use layers::{
    LayerPolicy, LayerStatement, LayerVersion, LayerVersionView, LayersPage, MAX_LAYERS,
    PublishLayer,
};
pub use model::{
    AccountSettings, CreateFunction, FunctionConfig, FunctionLayer, FunctionState, FunctionView,
    LastUpdateStatus, ListPage, UpdateCode, UpdateConfig,
};
pub use names::{FunctionRef, Scope};
pub use permissions::{
    AddPermission, Conditions, MAX_POLICY_BYTES, PolicyStatement, PolicyView, Principal,
};
pub use provisioned::ProvisionedConfig;
pub use runtimes::{RuntimeCatalog, RuntimeInfo, RuntimeKind};
pub use service::{DEFAULT_CONCURRENT_EXECUTIONS, FunctionService, ServiceOptions};
pub use versions::{PublishVersion, VersionsPage};

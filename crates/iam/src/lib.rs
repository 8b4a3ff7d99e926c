//! IAM and STS's domain: identities (users, groups, roles, access keys, sessions), their
//! policies, and the policy language every service's requests are judged by.
//!
//! - [`policy`]: policy documents parsed and validated on write (`MalformedPolicyDocument`
//!   otherwise), kept as typed statements.
//! - [`eval`]: AWS's evaluation logic as a pure function: an explicit Deny wins, else an
//!   Allow is needed; identity and resource policies; condition operators.
//! - [`IamService`] (`service.rs`): users, groups, roles, managed and inline policies,
//!   access keys, tags, over the store; the per-principal policy cache the front door reads.
//! - `sts.rs`: `AssumeRole`, `GetSessionToken`, and looking up any access key (users' and
//!   sessions').
//! - [`model`]: the entities as stored and returned; [`managed`]: AWS's managed policies.
//!
//! Invariant: no HTTP and no wire shapes here (those are `stratus-api-iam`'s and
//! `stratus-api-sts`'s).

mod error;
pub mod eval;
pub mod managed;
pub mod model;
pub mod policy;
mod service;
mod sts;

pub use error::IamError;
pub use model::{
    AccessKey, AssumedRole, Attachment, Credentials, EntityKind, Group, KeyInfo, KeyStatus,
    ManagedPolicy, PolicyVersion, Role, Session, Tag, User,
};
pub use service::{Clock, CreatePolicy, CreateRole, IamService, Listing, PolicyScope};
pub use sts::AssumeRoleInput;

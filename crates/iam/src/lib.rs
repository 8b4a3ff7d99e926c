//! IAM and STS's domain: identities (users, groups, roles, access keys, sessions), their
//! policies, and the policy language every service's requests are judged by.
//!
//! - [`policy`]: policy documents parsed and validated on write (`MalformedPolicyDocument`
//!   otherwise), kept as typed statements.
//! - [`eval`]: AWS's evaluation logic as a pure function: an explicit Deny wins, else an
//!   Allow is needed; identity and resource policies; condition operators.
//!
//! Invariant: no HTTP and no wire shapes here (those are `stratus-api-iam`'s and
//! `stratus-api-sts`'s).

pub mod eval;
pub mod policy;

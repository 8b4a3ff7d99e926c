//! The `stratus` binary's library half: configuration, credentials, and [`server::run`],
//! which wires the store, the services and the HTTP API together. `main.rs` only parses
//! arguments and calls into here, and the tests build servers the same way.

pub mod cli;
pub mod config;
pub mod credentials;
mod identity;
mod privacy;
mod sandbox;
pub mod server;
pub mod surfaces;
pub mod usage_cmd;

pub use config::Config;

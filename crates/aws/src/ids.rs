//! Ids AWS hands out: request ids and the like.

/// A request id, as AWS formats them (a UUID).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// 32 lowercase hex digits: log stream suffixes, environment ids.
pub fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

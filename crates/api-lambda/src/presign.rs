//! Presigned URLs the server hands out (GetFunction's `Code.Location`), signed with the
//! server's own key so the download is authenticated like any other request.

use stratus_sigv4::{SigningParams, presign_query};

use crate::ApiState;

/// `http://<host><path>?<presigned query>`, valid `expires` seconds.
pub fn presign_get(state: &ApiState, host: &str, path: &str, expires: u64) -> String {
    let (id, secret) = &state.presign_credentials;
    let query = presign_query(
        "GET",
        host,
        path,
        expires,
        &SigningParams {
            access_key_id: id,
            secret_access_key: secret,
            region: &state.region,
            service: "lambda",
            time: std::time::SystemTime::now(),
        },
    );
    format!("http://{host}{path}?{query}")
}

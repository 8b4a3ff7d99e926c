//! What the SigV4 tests share: an owned HTTP request to build, sign and tamper with.

use stratus_sigv4::SignedRequest;

#[derive(Debug, Clone)]
pub struct OwnedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl OwnedRequest {
    /// Runs `f` on the borrowed form the verifier and signer take.
    pub fn with<T>(&self, f: impl FnOnce(&SignedRequest<'_>) -> T) -> T {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        f(&SignedRequest {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
            body: &self.body,
        })
    }
}

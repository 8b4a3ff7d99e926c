//! Opaque pagination tokens: a service's position in a listing (usually the last key it
//! returned), wrapped so clients treat it as opaque and cannot forge a malformed one
//! unnoticed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "stratus1:";

/// The token that resumes a listing after `position`.
pub fn encode(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{position}"))
}

/// The position a token stands for, or `None` if it is not one of ours.
pub fn decode(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(PREFIX)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_strangers() {
        for p in ["", "a", "/aws/lambda/f", "ünï:cødé"] {
            assert_eq!(decode(&encode(p)).as_deref(), Some(p));
        }
        assert_eq!(decode("not a token"), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("other:x")), None);
    }
}

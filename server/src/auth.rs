//! Who may publish: the optional `--publish-token`, checked the same way for `POST /publish`, WebSocket
//! publish frames and the demo's generator controls.

use crate::error::ApiError;
use crate::state::AppState;

/// The token of an `Authorization: Bearer <token>` header value.
pub(crate) fn bearer_token(authorization: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(authorization?)
        .ok()?
        .strip_prefix("Bearer ")
}

/// Checks the publish token when one is configured.
pub(crate) fn authorize(state: &AppState, given: Option<&str>) -> Result<(), ApiError> {
    match (&state.config.publish_token, given) {
        (None, _) => Ok(()),
        (Some(expected), Some(given))
            if constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
        {
            Ok(())
        }
        (Some(_), _) => Err(ApiError::Unauthorized),
    }
}

/// Compares without an early exit, so response time does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}

//! Wall-clock time as the protocol sees it: whole seconds since the Unix
//! epoch for JWT claims, milliseconds for store expiry.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (JWT `iat`, `exp`, `nbf`).
pub fn now_secs() -> u64 {
    now_millis() / 1000
}

/// Milliseconds since the Unix epoch (store expiry).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

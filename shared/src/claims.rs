//! Access-token claims (RFC 9068 profile, DESIGN §3).

use serde::{Deserialize, Serialize};

use crate::side::Kind;

/// The claims of every splitgate access token, in this order on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The side's issuer: `B/oauth2-server` or `B/P/oauth2-server`.
    pub iss: String,
    /// The side's API: `B/api` or `B/P/api`; always one string.
    pub aud: String,
    /// What the backend knows: username, email, `visitor:<id>` or client id.
    pub sub: String,
    pub client_id: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    /// Unique per token: revocation of one access token.
    pub jti: String,
    /// Space-separated scopes; may be empty.
    pub scope: String,
    /// The refresh family or grant: revocation of everything issued from one
    /// login.
    pub sid: String,
    pub kind: Kind,
}

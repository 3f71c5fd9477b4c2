//! Reading the issuer's own access tokens back (revocation, introspection):
//! signature by the tenant's published key for that `kid`, algorithm pinned
//! by the key, and the claims of DESIGN §3.

use jsonwebtoken::{Validation, decode, decode_header};
use splitgate_shared::claims::AccessClaims;
use splitgate_shared::keys::PublishedKeys;

/// Whether expiry is checked: revocation accepts expired tokens (revoking
/// one is a harmless no-op), introspection does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Check,
    Ignore,
}

/// The claims of a token this tenant signed, or `None` for anything else
/// (another tenant's token, a tampered one, garbage).
pub fn verify(
    keys: &PublishedKeys,
    tenant: &str,
    token: &str,
    expiry: Expiry,
) -> Option<AccessClaims> {
    if token.len() > 16 * 1024 {
        return None;
    }
    let header = decode_header(token).ok()?;
    if header.typ.as_deref() != Some("at+jwt")
        || header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
    {
        return None;
    }
    let set = keys.get(tenant)?;
    let key = set.get(header.kid.as_deref()?)?;
    if header.alg != key.alg {
        return None;
    }
    let mut validation = Validation::new(key.alg);
    validation.validate_aud = false; // both sides' audiences are ours; callers compare
    validation.validate_exp = expiry == Expiry::Check;
    validation.validate_nbf = expiry == Expiry::Check;
    validation.leeway = 0;
    validation.required_spec_claims = ["exp", "iss", "sub", "aud"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    decode::<AccessClaims>(token, &key.key, &validation)
        .ok()
        .map(|data| data.claims)
}

/// Whether `token` looks like a JWT (two dots) rather than an opaque
/// refresh token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

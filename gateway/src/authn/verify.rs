//! Access-token verification (DESIGN §3, §5): the checks that decide
//! whether a JWT belongs to this tenant and this side.
//!
//! The header is read by hand before any key is touched, so that nothing in
//! it can choose how the token is verified: `typ` must be `at+jwt`; `kid`
//! picks a key of *this* tenant's set; the key pins the algorithm, and the
//! token's `alg` must name that same one (so `none` and HS256-with-a-public-
//! key are refused); `jku`, `x5u`, `jwk`, `x5c` (keys from the token itself)
//! and any `crit` extension are refused. jsonwebtoken then checks the
//! signature with that key and algorithm, and `iss`, `aud`, `exp` and `nbf`
//! (with the leeway) against the route's side.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use splitgate_shared::keys::{KeySet, PublishedKeys};
use splitgate_shared::side::Side;
use splitgate_shared::{AccessClaims, Tenant};

use super::cache::TokenCache;
use crate::error::TokenError;
use crate::jwks::JwksFetcher;

/// Header parameters that would let a token bring or point to its own key.
const FORBIDDEN_HEADERS: [&str; 5] = ["jku", "x5u", "jwk", "x5c", "crit"];

/// How many verified tokens are remembered (see [`TokenCache`]): about
/// 1 KiB each, so some 16 MiB at most.
pub const CACHE_CAPACITY: usize = 16_384;

/// Verifies tokens against the published keys; shared by every request.
pub struct Verifier {
    keys: Arc<PublishedKeys>,
    leeway: u64,
    cache: TokenCache,
    jwks: Option<JwksFetcher>,
}

impl Verifier {
    pub fn new(keys: Arc<PublishedKeys>, leeway: u64, jwks: Option<JwksFetcher>) -> Self {
        Verifier {
            keys,
            leeway,
            cache: TokenCache::new(CACHE_CAPACITY),
            jwks,
        }
    }

    /// The claims of `token` if it is a valid access token of `tenant` for
    /// `side` right now. Revocation is checked separately.
    pub fn verify(
        &self,
        tenant: &Tenant,
        side: Side,
        token: &str,
    ) -> Result<Arc<AccessClaims>, TokenError> {
        let Some(keys) = self.keys.get(&tenant.id) else {
            self.unknown_key(tenant);
            return Err(TokenError::UnknownKey);
        };
        let now = splitgate_shared::time::now_secs();
        if let Some(claims) = self.cache.get(token, &keys, side, now, self.leeway) {
            return Ok(claims);
        }
        let claims = match verify_fresh(&keys, tenant, side, token, self.leeway) {
            Ok(claims) => Arc::new(claims),
            Err(TokenError::UnknownKey) => {
                self.unknown_key(tenant);
                return Err(TokenError::UnknownKey);
            }
            Err(e) => return Err(e),
        };
        self.cache
            .insert(token, keys, side, claims.clone(), now, self.leeway);
        Ok(claims)
    }

    /// A gateway running alone may simply not have fetched a new key yet.
    fn unknown_key(&self, tenant: &Tenant) {
        if let Some(jwks) = &self.jwks {
            jwks.request_refresh(&tenant.id);
        }
    }
}

/// The header parameters we look at; anything else is ignored unless
/// listed in [`FORBIDDEN_HEADERS`].
#[derive(serde::Deserialize)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    #[serde(flatten)]
    others: serde_json::Map<String, serde_json::Value>,
}

/// The full check, without the cache.
pub fn verify_fresh(
    keys: &KeySet,
    tenant: &Tenant,
    side: Side,
    token: &str,
    leeway: u64,
) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if let Some(name) = FORBIDDEN_HEADERS
        .iter()
        .find(|name| header.others.contains_key(**name))
    {
        return Err(TokenError::ForbiddenHeader(name));
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.get(kid))
        .ok_or(TokenError::UnknownKey)?;
    let alg: Option<Algorithm> = header.alg.as_deref().and_then(|a| a.parse().ok());
    if alg != Some(key.alg) {
        return Err(TokenError::AlgorithmMismatch);
    }

    let mut validation = Validation::new(key.alg);
    validation.leeway = leeway;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.set_issuer(&[tenant.issuer(side)]);
    validation.set_audience(&[tenant.audience(side)]);
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                TokenError::AlgorithmMismatch
            }
            _ => TokenError::Malformed,
        })?;
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Minted, claims_for, tenant};
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use splitgate_shared::Kind;
    use splitgate_shared::keys::{SigningAlg, SigningKey};

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// A token with this header and these claims, signed by `key`.
    fn signed_with_header(
        key: &SigningKey,
        header: serde_json::Value,
        claims: &AccessClaims,
    ) -> String {
        let signing_input = format!(
            "{}.{}",
            b64(&header),
            b64(&serde_json::to_value(claims).unwrap())
        );
        let sig = key.sign_raw(signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn accepts_good_tokens_of_every_algorithm() {
        for alg in SigningAlg::ALL {
            let m = Minted::new(alg);
            let t = tenant("acme", "acme.test");
            let claims = claims_for(&t, Side::Backoffice, Kind::User, "alice");
            let token = m.key.sign_jwt(&claims).unwrap();
            let got = verify_fresh(&m.set, &t, Side::Backoffice, &token, 30).unwrap();
            assert_eq!(got, claims);
            assert_eq!(
                verify_fresh(&m.set, &t, Side::Storefront, &token, 30),
                Err(TokenError::WrongAudience),
                "{alg}: the other side refuses it"
            );
        }
    }

    #[test]
    fn the_cache_follows_the_published_key_set() {
        let keys = PublishedKeys::new();
        let m = Minted::new(SigningAlg::Es256);
        keys.set("acme", m.set);
        let verifier = Verifier::new(keys.clone(), 30, None);
        let t = tenant("acme", "acme.test");
        let claims = claims_for(&t, Side::Storefront, Kind::Customer, "c@example.com");
        let token = m.key.sign_jwt(&claims).unwrap();
        assert_eq!(
            *verifier.verify(&t, Side::Storefront, &token).unwrap(),
            claims
        );
        assert_eq!(verifier.cache.len(), 1);
        assert_eq!(
            *verifier.verify(&t, Side::Storefront, &token).unwrap(),
            claims
        );
        assert_eq!(
            verifier.verify(&t, Side::Backoffice, &token),
            Err(TokenError::WrongAudience),
            "a cached token is still refused on the other side"
        );
        keys.set("acme", Minted::new(SigningAlg::Es256).set);
        assert_eq!(
            verifier.verify(&t, Side::Storefront, &token),
            Err(TokenError::UnknownKey),
            "once the key is no longer published, the cache does not vouch for it"
        );
        assert_eq!(verifier.cache.len(), 0);
    }

    #[test]
    fn refuses_forged_and_stale_tokens() {
        let m = Minted::new(SigningAlg::Rs256);
        let t = tenant("acme", "acme.test");
        let side = Side::Storefront;
        let good = claims_for(&t, side, Kind::Customer, "c@example.com");
        let check = |token: &str| verify_fresh(&m.set, &t, side, token, 30);
        let kid = m.key.kid().to_owned();
        let header = |extra: serde_json::Value| {
            let mut h = serde_json::json!({"typ": "at+jwt", "alg": "RS256", "kid": kid});
            for (k, v) in extra.as_object().unwrap() {
                h[k] = v.clone();
            }
            h
        };
        let token = m.key.sign_jwt(&good).unwrap();

        // Tampered payload: same signature, claims changed.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut evil = good.clone();
        evil.sub = "admin".into();
        parts[1] = b64(&serde_json::to_value(&evil).unwrap());
        assert_eq!(check(&parts.join(".")), Err(TokenError::BadSignature));
        // Tampered signature.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[2] = URL_SAFE_NO_PAD.encode([7u8; 256]);
        assert_eq!(check(&parts.join(".")), Err(TokenError::BadSignature));
        // alg none, no signature.
        let none = format!(
            "{}.{}.",
            b64(&header(serde_json::json!({"alg": "none"}))),
            b64(&serde_json::to_value(&good).unwrap())
        );
        assert_eq!(check(&none), Err(TokenError::AlgorithmMismatch));
        // HS256 keyed with the public key's PEM and with its JWK n.
        let jwk = m.key.public_jwk();
        let n = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
            _ => unreachable!(),
        };
        for secret in [n.as_bytes().to_vec(), serde_json::to_vec(&jwk).unwrap()] {
            let mut h = JwtHeader::new(Algorithm::HS256);
            h.typ = Some("at+jwt".into());
            h.kid = Some(kid.clone());
            let hs = jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&secret)).unwrap();
            assert_eq!(check(&hs), Err(TokenError::AlgorithmMismatch));
        }
        // Keys carried or pointed to by the token, and critical extensions.
        for (name, value) in [
            ("jku", serde_json::json!("https://evil.example/jwks")),
            ("x5u", serde_json::json!("https://evil.example/cert")),
            ("jwk", serde_json::to_value(&jwk).unwrap()),
            ("x5c", serde_json::json!(["MIIB"])),
            ("crit", serde_json::json!(["exp"])),
        ] {
            let forged =
                signed_with_header(&m.key, header(serde_json::json!({name: value})), &good);
            assert_eq!(
                check(&forged),
                Err(TokenError::ForbiddenHeader(
                    FORBIDDEN_HEADERS.iter().find(|n| **n == name).unwrap()
                )),
                "{name}"
            );
        }
        // typ.
        for typ in [serde_json::json!("JWT"), serde_json::Value::Null] {
            let t2 = signed_with_header(&m.key, header(serde_json::json!({"typ": typ})), &good);
            assert_eq!(check(&t2), Err(TokenError::WrongType));
        }
        let app = signed_with_header(
            &m.key,
            header(serde_json::json!({"typ": "application/at+jwt"})),
            &good,
        );
        assert!(check(&app).is_ok());
        // kid missing or unknown, and a key of another tenant.
        let no_kid = signed_with_header(&m.key, header(serde_json::json!({"kid": null})), &good);
        assert_eq!(check(&no_kid), Err(TokenError::UnknownKey));
        let other = SigningKey::generate(SigningAlg::Rs256).unwrap();
        assert_eq!(
            check(&other.sign_jwt(&good).unwrap()),
            Err(TokenError::UnknownKey)
        );
        // Lifetimes, with the leeway.
        let now = splitgate_shared::time::now_secs();
        let mut c = good.clone();
        c.exp = now - 31;
        assert_eq!(
            check(&m.key.sign_jwt(&c).unwrap()),
            Err(TokenError::Expired)
        );
        c.exp = now - 29;
        assert!(check(&m.key.sign_jwt(&c).unwrap()).is_ok());
        let mut c = good.clone();
        c.nbf = now + 31;
        assert_eq!(
            check(&m.key.sign_jwt(&c).unwrap()),
            Err(TokenError::NotYetValid)
        );
        // Another tenant's issuer with this tenant's key.
        let mut c = good.clone();
        c.iss = "http://other.test/oauth2-server".into();
        assert_eq!(
            check(&m.key.sign_jwt(&c).unwrap()),
            Err(TokenError::WrongAudience)
        );
        // Garbage.
        for junk in ["a", "a.b", "a.b.c.d", "!.!.!", "e30.e30.e30"] {
            assert!(check(junk).is_err(), "{junk}");
        }
        let missing_claims = signed_with_header(&m.key, header(serde_json::json!({})), &good)
            .replace(
                &b64(&serde_json::to_value(&good).unwrap()),
                &b64(&serde_json::json!({"sub": "x"})),
            );
        assert!(check(&missing_claims).is_err());
    }
}

//! Helpers for the unit tests of this crate.

use std::time::Duration;

use http_body_util::BodyExt;
use splitgate_shared::keys::{KeySet, SigningAlg, SigningKey};
use splitgate_shared::side::{Kind, Side};
use splitgate_shared::{AccessClaims, Tenant};

pub fn tenant(id: &str, host: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        hosts: vec![host.into()],
        base_url: format!("http://{host}"),
        backend_prefix: "/admin".into(),
        upstream: http::Uri::from_static("http://127.0.0.1:9"),
        signing_alg: SigningAlg::Rs256,
        access_token_ttl: Duration::from_secs(3600),
        refresh_token_ttl: Duration::from_secs(86_400),
        auth_code_ttl: Duration::from_secs(600),
        visitor_ttl: Duration::from_secs(86_400),
        cors_origins: vec![],
        tls: None,
    }
}

pub async fn body_string(response: http::Response<splitgate_shared::http::Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A signing key and the key set that publishes it.
pub struct Minted {
    pub key: SigningKey,
    pub set: KeySet,
}

impl Minted {
    pub fn new(alg: SigningAlg) -> Minted {
        let key = SigningKey::generate(alg).unwrap();
        let set = KeySet::from_jwks(&jsonwebtoken::jwk::JwkSet {
            keys: vec![key.public_jwk()],
        });
        Minted { key, set }
    }
}

/// Valid claims of `kind` for `tenant`'s `side`, issued now for an hour.
pub fn claims_for(tenant: &Tenant, side: Side, kind: Kind, sub: &str) -> AccessClaims {
    let now = splitgate_shared::time::now_secs();
    AccessClaims {
        iss: tenant.issuer(side),
        aud: tenant.audience(side),
        sub: sub.into(),
        client_id: "client-1".into(),
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: splitgate_shared::secrets::random_id(),
        scope: "read write".into(),
        sid: splitgate_shared::secrets::random_id(),
        kind,
    }
}

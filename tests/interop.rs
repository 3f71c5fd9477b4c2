//! Interoperability: an independent OAuth client crate (`oauth2`) obtains
//! tokens with a form body and with HTTP Basic, and a second JWT library
//! (`jwt-simple`, not the one that signs) validates them against the
//! tenant's JWKS with the side's `iss` and `aud`, for every algorithm.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername, TokenResponse,
    TokenUrl,
};
use serde_json::{Value, json};
use support::Server;

const EDDSA_TENANT: &str = r#"
[tenants.short]
hosts = ["short.test"]
base_url = "https://short.test"
upstream = "http://127.0.0.1:9"
signing_alg = "EdDSA"
"#;

/// Verifies with jwt-simple against the published JWKS, requiring `iss`,
/// `aud` and `typ`.
fn verify(
    jwks: &Value,
    token: &str,
    iss: &str,
    aud: &str,
) -> Result<JWTClaims<Value>, jwt_simple::Error> {
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([iss.to_owned()])),
        allowed_audiences: Some(HashSet::from([aud.to_owned()])),
        required_signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    let kid = support::header(token)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid is published");
    let b = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[field].as_str().expect(field))
            .expect("base64url")
    };
    match jwk["alg"].as_str() {
        Some("RS256") => RS256PublicKey::from_components(&b("n"), &b("e"))?
            .verify_token::<Value>(token, Some(options)),
        Some("ES256") => {
            let mut point = vec![4u8];
            point.extend(b("x"));
            point.extend(b("y"));
            ES256PublicKey::from_bytes(&point)?.verify_token::<Value>(token, Some(options))
        }
        Some("EdDSA") => {
            Ed25519PublicKey::from_bytes(&b("x"))?.verify_token::<Value>(token, Some(options))
        }
        other => panic!("unexpected alg {other:?}"),
    }
}

#[tokio::test]
async fn oauth2_crate_tokens_validate_with_a_second_jwt_library() {
    let s = Server::start(EDDSA_TENANT).await;
    let http = support::oauth2_http(&s);
    for (host, tenant, scheme, prefix) in [
        ("acme.test", "acme", "http", "/admin"),
        ("globex.test", "globex", "https", "/backoffice"),
        ("short.test", "short", "https", "/admin"),
    ] {
        let base = format!("{scheme}://{host}");
        let jwks: Value = s
            .http
            .get(s.url(host, "/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();

        // Client credentials, back office, with HTTP Basic.
        let (id, secret) = s.client(tenant, json!({"side": "backoffice", "name": "integration", "grants": ["client_credentials"]})).await;
        let client = BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret))
            .set_token_uri(TokenUrl::new(s.url(host, "/oauth2-token")).unwrap())
            .set_auth_type(AuthType::BasicAuth);
        let token = client
            .exchange_client_credentials()
            .request_async(&http)
            .await
            .expect("client credentials over Basic");
        assert_eq!(
            token.expires_in(),
            Some(std::time::Duration::from_secs(3600))
        );
        let jwt = token.access_token().secret();
        let (iss, aud) = (
            format!("{base}{prefix}/oauth2-server"),
            format!("{base}{prefix}/api"),
        );
        let claims = verify(&jwks, jwt, &iss, &aud).unwrap_or_else(|e| panic!("{tenant}: {e}"));
        assert_eq!(claims.subject.as_deref(), Some(id.as_str()));
        // The other side's issuer and audience do not accept it.
        assert!(
            verify(
                &jwks,
                jwt,
                &format!("{base}/oauth2-server"),
                &format!("{base}/api")
            )
            .is_err()
        );

        // Password grant, storefront, with the credentials in the form body.
        s.user(tenant, "storefront", "ivy@example.com", "correct horse")
            .await;
        let (id, secret) = s.client(tenant, json!({"side": "storefront", "name": "app", "grants": ["password", "refresh_token"]})).await;
        let client = BasicClient::new(ClientId::new(id))
            .set_client_secret(ClientSecret::new(secret))
            .set_token_uri(TokenUrl::new(s.url(host, "/oauth2-token")).unwrap())
            .set_auth_type(AuthType::RequestBody);
        let token = client
            .exchange_password(
                &ResourceOwnerUsername::new("ivy@example.com".into()),
                &ResourceOwnerPassword::new("correct horse".into()),
            )
            .request_async(&http)
            .await
            .expect("password grant with a form body");
        assert!(token.refresh_token().is_some());
        let claims = verify(
            &jwks,
            token.access_token().secret(),
            &format!("{base}/oauth2-server"),
            &format!("{base}/api"),
        )
        .unwrap();
        assert_eq!(claims.subject.as_deref(), Some("ivy@example.com"));
        assert_eq!(claims.custom["kind"], "customer");

        // A tampered token fails the second library too.
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["sub"] = json!("someone-else");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert!(verify(&jwks, &parts.join("."), &iss, &aud).is_err());
    }
    s.stop().await;
}

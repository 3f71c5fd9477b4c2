//! What both benchmarks set up the same way: a config with the embedded
//! store in a temporary data directory, confidential clients created
//! through the admin API over its socket (as `splitgate client create`
//! does), and the client-credentials token request.

#![allow(dead_code)] // each benchmark uses its own part

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use serde_json::Value;
use splitgate::run::Running;
use splitgate_shared::Config;

use crate::load::Template;

/// `[store]` with the default (embedded) backend in `data_dir`, then
/// `tenants` (TOML).
pub fn config(data_dir: &Path, tenants: &str) -> Config {
    let toml = format!(
        "[store]\nbackend = \"embedded\"\ndata_dir = \"{}\"\n{tenants}",
        data_dir.display()
    );
    splitgate_shared::config::load_str(&toml).unwrap_or_else(|e| panic!("bench config: {e}"))
}

/// Creates a client of `tenant` through the admin API; returns its id and
/// secret.
pub async fn create_client(running: &Running, tenant: &str, body: Value) -> (String, String) {
    let token = running.admin_token.as_ref().expect("admin token").expose();
    let res = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/tenants/{tenant}/clients",
            running.admin
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("admin API");
    let status = res.status().as_u16();
    let created: Value = res.json().await.expect("admin API answers JSON");
    assert_eq!(status, 201, "create client: {created}");
    let field = |name: &str| created[name].as_str().expect(name).to_owned();
    (field("client_id"), field("client_secret"))
}

/// `POST /oauth2-token` with `grant_type=client_credentials`, the client
/// authenticated with HTTP Basic, for the tenant at `host`.
pub fn token_request(host: &str, client_id: &str, secret: &str) -> Template {
    let basic = STANDARD.encode(format!("{client_id}:{secret}"));
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {basic}")).expect("basic"),
    );
    Template {
        method: Method::POST,
        path: "/oauth2-token".into(),
        headers,
        body: Bytes::from_static(b"grant_type=client_credentials"),
    }
}

/// The `access_token` of a token endpoint's success body.
pub fn access_token(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).expect("token response is JSON");
    value["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

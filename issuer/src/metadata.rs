//! RFC 8414 authorization server metadata, one document per side at the
//! paths of DESIGN §2, listing only what this issuer implements; and the
//! tenant's JWKS.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use splitgate_shared::http::{Body, full};
use splitgate_shared::keys::PublishedKeys;
use splitgate_shared::{Side, Tenant};

#[derive(Debug, Serialize)]
struct Metadata {
    issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    response_types_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: [&'static str; 3],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 3],
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_methods_supported: Option<[&'static str; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}

const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// The metadata document of `side`.
pub fn document(tenant: &Tenant, side: Side) -> Vec<u8> {
    let base = &tenant.base_url;
    let code_flow = crate::authorize::ENABLED;
    let mut grants = vec!["client_credentials", "password", "refresh_token"];
    if code_flow {
        grants.insert(2, "authorization_code");
    }
    let metadata = Metadata {
        issuer: tenant.issuer(side),
        authorization_endpoint: code_flow.then(|| format!("{base}{}", tenant.authorize_path(side))),
        token_endpoint: format!("{base}/oauth2-token"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        revocation_endpoint: format!("{base}/oauth2-token/revoke"),
        introspection_endpoint: format!("{base}/oauth2-token/introspect"),
        response_types_supported: if code_flow { vec!["code"] } else { vec![] },
        grant_types_supported: grants,
        token_endpoint_auth_methods_supported: AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: AUTH_METHODS,
        introspection_endpoint_auth_methods_supported: AUTH_METHODS,
        code_challenge_methods_supported: code_flow.then_some(["S256", "plain"]),
        authorization_response_iss_parameter_supported: code_flow.then_some(true),
    };
    serde_json::to_vec(&metadata).unwrap_or_default()
}

pub fn metadata_response(tenant: &Tenant, side: Side) -> Response<Body> {
    public_json(document(tenant, side))
}

/// `/.well-known/jwks.json`: the tenant's published keys.
pub fn jwks_response(keys: &PublishedKeys, tenant: &Tenant) -> Response<Body> {
    match keys.get(&tenant.id) {
        Some(set) => public_json(set.json()),
        None => {
            let mut r = public_json(&b"{\"keys\":[]}"[..]);
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

fn public_json(body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Short enough that a rotated-in key is seen long before it signs.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

//! Every way the gateway refuses a request, and the one place where each
//! becomes a response (DESIGN §5): a JSON:API error document
//! (`application/vnd.api+json`), and for bearer failures an RFC 6750
//! `WWW-Authenticate` challenge.
//!
//! The layers return these typed values; nothing else in the crate builds an
//! error response. `docs/gateway.md` lists the same table.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};
use splitgate_shared::Tenant;
use splitgate_shared::errors::{JSON_API, json_api_error_body};
use splitgate_shared::http::{Body, full};
use splitgate_shared::side::Side;

use crate::path::PathError;

/// A refusal that is not about the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No tenant has this host (421).
    #[error("no tenant is served at this host")]
    UnknownHost,
    /// No host, two hosts, or a request target whose authority disagrees
    /// with `Host` (400).
    #[error("{0}")]
    InvalidHost(&'static str),
    /// A path the gateway will not route (400).
    #[error("{0}")]
    InvalidPath(PathError),
    /// No route for this path (404); the backend is not asked.
    #[error("no route matches this path")]
    NotFound,
    /// A method this route does not serve (405).
    #[error("this method is not allowed here")]
    MethodNotAllowed(&'static str),
    /// The request headers add up to more than `gateway.max_header_bytes`.
    #[error("the request headers are too large")]
    HeadersTooLarge,
    /// The revocation view is older than `gateway.revocation_max_staleness`.
    #[error("revocations cannot be checked right now; retry later")]
    RevocationUnavailable,
    /// A CORS preflight from an origin (or to a route) that is not allowed.
    #[error("this origin may not call this endpoint")]
    CorsForbidden,
    /// More requests in flight than `gateway.max_concurrent_requests`.
    #[error("the gateway is overloaded; retry later")]
    Overloaded,
    /// The whole request took longer than `gateway.request_timeout`.
    #[error("the request took too long")]
    RequestTimeout,
    /// The backend (or, alone, the issuer) could not be reached.
    #[error("the upstream server could not be reached")]
    UpstreamUnreachable,
    /// The backend did not answer within `gateway.upstream_timeout`.
    #[error("the upstream server did not answer in time")]
    UpstreamTimeout,
    /// A bug: a layer found the request without what an earlier one adds.
    #[error("internal error")]
    Internal,
}

impl Reject {
    fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Reject::UnknownHost => (StatusCode::MISDIRECTED_REQUEST, "unknown_host"),
            Reject::InvalidHost(_) => (StatusCode::BAD_REQUEST, "invalid_host"),
            Reject::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            Reject::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Reject::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Reject::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Reject::RevocationUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "revocation_unavailable")
            }
            Reject::CorsForbidden => (StatusCode::FORBIDDEN, "cors_forbidden"),
            Reject::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Reject::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Reject::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            Reject::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
            Reject::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The response for this refusal.
    pub fn response(self) -> http::Response<Body> {
        if self == Reject::Internal {
            tracing::error!("a gateway layer found a request without what an earlier layer adds");
        }
        let (status, code) = self.status_and_code();
        let mut response = document(status, code, &self.to_string());
        let headers = response.headers_mut();
        match self {
            Reject::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Reject::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Reject::RevocationUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// Why a bearer token was not accepted. The messages are the RFC 6750
/// `error_description` and the JSON:API `detail`: they tell the client what
/// to fix and never echo the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token header parameter {0} is not accepted")]
    ForbiddenHeader(&'static str),
    #[error("the token is not signed by a key of this tenant")]
    UnknownKey,
    #[error("the token algorithm is not the algorithm of its key")]
    AlgorithmMismatch,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not for this API")]
    WrongAudience,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token claims cannot be passed to the backend")]
    Unforwardable,
}

/// A refusal on an authenticated route: these carry a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No credentials, or credentials of another scheme: RFC 6750 §3.1 says
    /// the challenge then names no error.
    #[error("a bearer token is required")]
    Missing,
    /// A malformed request (400, `invalid_request`).
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// A token that is longer than `gateway.max_token_bytes` (431).
    #[error("the bearer token is too large")]
    TooLarge,
    /// A token that was read but is not accepted (401, `invalid_token`).
    #[error("{0}")]
    InvalidToken(TokenError),
}

impl From<TokenError> for BearerError {
    fn from(e: TokenError) -> Self {
        BearerError::InvalidToken(e)
    }
}

impl BearerError {
    /// The response, with `WWW-Authenticate: Bearer realm="<tenant>", ...`
    /// and the RFC 9728 `resource_metadata` of the route's API.
    pub fn response(self, tenant: &Tenant, side: Side) -> http::Response<Body> {
        let detail = self.to_string();
        let (status, code, error) = match self {
            BearerError::Missing => (StatusCode::UNAUTHORIZED, "missing_token", None),
            BearerError::InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("invalid_request"),
            ),
            BearerError::TooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "token_too_large",
                Some("invalid_request"),
            ),
            BearerError::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                Some("invalid_token"),
            ),
        };
        let mut response = document(status, code, &detail);
        let mut challenge = format!("Bearer realm=\"{}\"", tenant.id);
        if let Some(error) = error {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{detail}\""
            ));
        }
        challenge.push_str(&format!(
            ", resource_metadata=\"{}{}\"",
            tenant.base_url,
            tenant.resource_metadata_path(side)
        ));
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Any refusal, with what its response needs: what the layers return.
#[derive(Debug, Clone)]
pub enum Refusal {
    Plain(Reject),
    /// On an API route: answered with a challenge for its tenant and side.
    Bearer {
        error: BearerError,
        tenant: Arc<Tenant>,
        side: Side,
    },
}

impl Refusal {
    pub fn bearer(error: impl Into<BearerError>, tenant: &Arc<Tenant>, side: Side) -> Self {
        Refusal::Bearer {
            error: error.into(),
            tenant: tenant.clone(),
            side,
        }
    }

    pub fn response(self) -> http::Response<Body> {
        match self {
            Refusal::Plain(reject) => reject.response(),
            Refusal::Bearer {
                error,
                tenant,
                side,
            } => error.response(&tenant, side),
        }
    }
}

impl From<Reject> for Refusal {
    fn from(reject: Reject) -> Self {
        Refusal::Plain(reject)
    }
}

/// A JSON:API error document with one error; the title is the status's
/// reason phrase.
fn document(status: StatusCode, code: &str, detail: &str) -> http::Response<Body> {
    let body = json_api_error_body(
        status,
        code,
        status.canonical_reason().unwrap_or("Error"),
        detail,
    );
    let mut response = http::Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{body_string, tenant};

    #[tokio::test]
    async fn reject_bodies_are_exact() {
        let cases = [
            (
                Reject::UnknownHost,
                421,
                r#"{"errors":[{"status":"421","code":"unknown_host","title":"Misdirected Request","detail":"no tenant is served at this host"}]}"#,
            ),
            (
                Reject::NotFound,
                404,
                r#"{"errors":[{"status":"404","code":"not_found","title":"Not Found","detail":"no route matches this path"}]}"#,
            ),
            (
                Reject::UpstreamUnreachable,
                502,
                r#"{"errors":[{"status":"502","code":"bad_gateway","title":"Bad Gateway","detail":"the upstream server could not be reached"}]}"#,
            ),
            (
                Reject::UpstreamTimeout,
                504,
                r#"{"errors":[{"status":"504","code":"gateway_timeout","title":"Gateway Timeout","detail":"the upstream server did not answer in time"}]}"#,
            ),
            (
                Reject::Overloaded,
                503,
                r#"{"errors":[{"status":"503","code":"overloaded","title":"Service Unavailable","detail":"the gateway is overloaded; retry later"}]}"#,
            ),
            (
                Reject::RequestTimeout,
                408,
                r#"{"errors":[{"status":"408","code":"request_timeout","title":"Request Timeout","detail":"the request took too long"}]}"#,
            ),
        ];
        for (reject, status, body) in cases {
            let response = reject.response();
            assert_eq!(response.status().as_u16(), status, "{reject:?}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_API);
            assert_eq!(body_string(response).await, body);
        }
        let overloaded = Reject::Overloaded.response();
        assert_eq!(overloaded.headers()[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn challenges_follow_rfc_6750() {
        let t = tenant("acme", "acme.test");
        let missing = BearerError::Missing.response(&t, Side::Storefront);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"acme\", resource_metadata=\"http://acme.test/.well-known/oauth-protected-resource/api\""
        );
        let expired = BearerError::InvalidToken(TokenError::Expired).response(&t, Side::Backoffice);
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            expired.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"acme\", error=\"invalid_token\", error_description=\"the token has expired\", resource_metadata=\"http://acme.test/.well-known/oauth-protected-resource/admin/api\""
        );
        assert_eq!(
            body_string(expired).await,
            r#"{"errors":[{"status":"401","code":"invalid_token","title":"Unauthorized","detail":"the token has expired"}]}"#
        );
    }
}

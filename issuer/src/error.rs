//! The issuer's errors and the one place they become HTTP responses.
//!
//! Grant and endpoint code returns [`OAuthError`]s that name an RFC 6749
//! §5.2 code and a description a developer can act on; [`OAuthError::into_response`]
//! gives them the exact shape of DESIGN §4. Store failures become
//! `temporarily_unavailable` without their internal detail (which is
//! logged instead).

use http::{HeaderValue, Response, StatusCode, header};
use splitgate_shared::StoreError;
use splitgate_shared::errors::oauth_error_body;
use splitgate_shared::http::{Body, full};

/// RFC 6749 §5.2 (and RFC 7009/7662) error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    TemporarilyUnavailable,
    UnsupportedTokenType,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::InvalidClient => "invalid_client",
            Code::InvalidGrant => "invalid_grant",
            Code::UnauthorizedClient => "unauthorized_client",
            Code::UnsupportedGrantType => "unsupported_grant_type",
            Code::InvalidScope => "invalid_scope",
            Code::TemporarilyUnavailable => "temporarily_unavailable",
            Code::UnsupportedTokenType => "unsupported_token_type",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::InvalidClient => StatusCode::UNAUTHORIZED,
            Code::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error answered in the OAuth shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: Code,
    pub description: String,
    /// Overrides the code's usual status (413, 415, 405, 421).
    pub status: Option<StatusCode>,
    /// `WWW-Authenticate: Basic realm=...` on `invalid_client` when the
    /// client authenticated with Basic (RFC 6749 §5.2).
    pub basic_realm: Option<String>,
}

impl OAuthError {
    pub fn new(code: Code, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            status: None,
            basic_realm: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(Code::InvalidGrant, description)
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status.unwrap_or(self.code.status());
        let body = oauth_error_body(self.code.as_str(), &self.description, None);
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(realm) = self.basic_realm
            && let Ok(value) =
                HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        tracing::error!(cause = %e, "store call failed");
        OAuthError::new(
            Code::TemporarilyUnavailable,
            "the token service cannot reach its store; retry in a moment",
        )
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;

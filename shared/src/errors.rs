//! Error documents, the two shapes outside clients rely on (exact):
//!
//! - OAuth (token, revoke, introspect endpoints; DESIGN §4):
//!   `{"error":"...","error_description":"...","message":"..."}`;
//! - JSON:API (gateway; DESIGN §5):
//!   `{"errors":[{"status":"401","code":"...","title":"...","detail":"..."}]}`.
//!
//! Only bodies are built here; statuses and headers are chosen by the
//! server that answers.

use serde::Serialize;

pub const JSON_API: &str = "application/vnd.api+json";

#[derive(Serialize)]
struct OAuthError<'a> {
    error: &'a str,
    error_description: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
}

/// The OAuth error body; `message` repeats `error_description` for clients
/// written against the original API.
pub fn oauth_error_body(error: &str, description: &str, hint: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&OAuthError {
        error,
        error_description: description,
        message: description,
        hint,
    })
    .unwrap_or_default()
}

#[derive(Serialize)]
struct JsonApiErrors<'a> {
    errors: [JsonApiError<'a>; 1],
}

#[derive(Serialize)]
struct JsonApiError<'a> {
    status: &'a str,
    code: &'a str,
    title: &'a str,
    detail: &'a str,
}

/// A JSON:API error document with one error.
pub fn json_api_error_body(
    status: http::StatusCode,
    code: &str,
    title: &str,
    detail: &str,
) -> Vec<u8> {
    serde_json::to_vec(&JsonApiErrors {
        errors: [JsonApiError {
            status: status.as_str(),
            code,
            title,
            detail,
        }],
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_exact() {
        assert_eq!(
            String::from_utf8(oauth_error_body("invalid_grant", "bad", None)).unwrap(),
            r#"{"error":"invalid_grant","error_description":"bad","message":"bad"}"#
        );
        assert_eq!(
            String::from_utf8(json_api_error_body(
                http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Unauthorized",
                "expired"
            ))
            .unwrap(),
            r#"{"errors":[{"status":"401","code":"invalid_token","title":"Unauthorized","detail":"expired"}]}"#
        );
    }
}

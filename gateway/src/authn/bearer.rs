//! Reading the bearer token from a request (RFC 6750 §2.1): only from
//! `Authorization: Bearer <token>`. A token in the query string is refused
//! outright (it ends up in logs and `Referer`s); a form-encoded body token
//! is never looked for.

use http::{HeaderMap, header};

use crate::error::BearerError;

/// The token of `Authorization: Bearer <token>`, or why there is none.
pub fn token_from(headers: &HeaderMap, max_len: usize) -> Result<&str, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(BearerError::InvalidRequest(
            "the request has more than one Authorization header",
        ));
    }
    let bytes = value.as_bytes();
    let scheme_len = bytes.iter().position(|b| *b == b' ').unwrap_or(bytes.len());
    if !bytes[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        // Another scheme (Basic, ...) is "no bearer credentials": RFC 6750
        // §3.1 answers it like a missing token.
        return Err(BearerError::Missing);
    }
    let token = bytes[scheme_len..].trim_ascii_start();
    if token.is_empty() {
        return Err(BearerError::InvalidRequest(
            "the Authorization header has no token",
        ));
    }
    if token.len() > max_len {
        return Err(BearerError::TooLarge);
    }
    if !is_b64token(token) {
        return Err(BearerError::InvalidRequest(
            "the Authorization header is malformed",
        ));
    }
    // b64token is ASCII, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| BearerError::InvalidRequest("not ASCII"))
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    body > 0
        && token[..body].iter().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Whether the query string carries an `access_token` parameter (refused).
pub fn query_has_token(query: Option<&str>) -> bool {
    let Some(query) = query else {
        return false;
    };
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        let name = name.replace('+', " ");
        percent_encoding::percent_decode_str(&name)
            .decode_utf8_lossy()
            .trim()
            .eq_ignore_ascii_case("access_token")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reads_bearer_tokens() {
        assert_eq!(
            token_from(&headers(&["Bearer abc.def.ghi"]), 100),
            Ok("abc.def.ghi")
        );
        assert_eq!(token_from(&headers(&["bearer  abc"]), 100), Ok("abc"));
        assert_eq!(token_from(&headers(&["BEARER a+/b=="]), 100), Ok("a+/b=="));
    }

    #[test]
    fn refusals() {
        assert_eq!(token_from(&headers(&[]), 100), Err(BearerError::Missing));
        assert_eq!(
            token_from(&headers(&["Basic dXNlcjpwYXNz"]), 100),
            Err(BearerError::Missing)
        );
        assert_eq!(
            token_from(&headers(&["Bearerabc"]), 100),
            Err(BearerError::Missing)
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ==",
            "Bearer a\"b",
        ] {
            assert!(
                matches!(
                    token_from(&headers(&[bad]), 100),
                    Err(BearerError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            token_from(&headers(&["Bearer a", "Bearer b"]), 100),
            Err(BearerError::InvalidRequest(_))
        ));
        assert_eq!(
            token_from(&headers(&[&format!("Bearer {}", "a".repeat(101))]), 100),
            Err(BearerError::TooLarge)
        );
    }

    #[test]
    fn finds_query_tokens_however_spelled() {
        for q in [
            "access_token=x",
            "a=1&access_token=x",
            "ACCESS_TOKEN=x",
            "access%5Ftoken=x",
            "access_token",
        ] {
            assert!(query_has_token(Some(q)), "{q}");
        }
        for q in ["page=1", "x_access_token=1", "token=1"] {
            assert!(!query_has_token(Some(q)), "{q}");
        }
        assert!(!query_has_token(None));
    }
}

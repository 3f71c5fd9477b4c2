//! Scopes (RFC 6749 §3.3): space-separated tokens. A client may only ask
//! for scopes it was registered with; asking for none grants all of them.

use crate::error::{Code, OAuthError, OAuthResult};

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn parse(text: &str) -> OAuthResult<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        if !valid_token(token) {
            return Err(OAuthError::new(
                Code::InvalidScope,
                "the scope parameter is malformed",
            ));
        }
        if !out.contains(&token) {
            out.push(token);
        }
    }
    Ok(out)
}

/// The scope to grant: the requested one if every token is within
/// `allowed`, or all of `allowed` when nothing was requested.
pub fn resolve(requested: Option<&str>, allowed: &[String]) -> OAuthResult<String> {
    let Some(requested) = requested else {
        return Ok(allowed.join(" "));
    };
    let tokens = parse(requested)?;
    if let Some(bad) = tokens.iter().find(|t| !allowed.iter().any(|a| a == *t)) {
        return Err(OAuthError::new(
            Code::InvalidScope,
            format!("the scope `{bad}` is not allowed for this client"),
        ));
    }
    Ok(tokens.join(" "))
}

/// A refresh may narrow the scope, never widen it (RFC 6749 §6).
pub fn narrow(requested: Option<&str>, granted: &str) -> OAuthResult<String> {
    let granted: Vec<String> = granted
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    match requested {
        None => Ok(granted.join(" ")),
        Some(_) => resolve(requested, &granted).map_err(|e| {
            if e.code == Code::InvalidScope && e.description.starts_with("the scope `") {
                OAuthError::new(
                    Code::InvalidScope,
                    e.description
                        .replace("for this client", "beyond what was originally granted"),
                )
            } else {
                e
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_narrows() {
        let allowed = vec!["read".to_owned(), "write".to_owned()];
        assert_eq!(resolve(None, &allowed).unwrap(), "read write");
        assert_eq!(
            resolve(Some("write  read write"), &allowed).unwrap(),
            "write read"
        );
        assert_eq!(
            resolve(Some("admin"), &allowed).unwrap_err().description,
            "the scope `admin` is not allowed for this client"
        );
        assert!(resolve(Some("a\"b"), &allowed).is_err());
        assert_eq!(narrow(Some("read"), "read write").unwrap(), "read");
        assert_eq!(narrow(None, "read write").unwrap(), "read write");
        assert_eq!(
            narrow(Some("delete"), "read").unwrap_err().description,
            "the scope `delete` is not allowed beyond what was originally granted"
        );
    }
}

//! PKCE (RFC 7636): the challenge at authorize, the verifier at the token
//! endpoint.
//!
//! Public clients must send an S256 challenge; `plain` is accepted only from
//! a client registered with `allow_plain_pkce`. A confidential client may
//! leave PKCE out (it proves itself with its secret), but then a verifier at
//! the token endpoint is refused: accepting one would let an attacker who
//! stripped the challenge believe PKCE was checked (RFC 9700 §2.1.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use splitgate_shared::secrets::ct_eq;

use crate::clients::ClientRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    S256,
    #[serde(rename = "plain")]
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub value: String,
    pub method: Method,
}

/// `unreserved` of RFC 3986, the alphabet of verifiers and challenges.
fn unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A verifier is 43 to 128 unreserved characters (RFC 7636 §4.1).
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && unreserved(v)
}

/// The challenge of an authorization request, checked against the client;
/// the error is an `invalid_request` description.
pub fn from_request(
    client: &ClientRecord,
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<Challenge>, String> {
    let Some(value) = challenge else {
        if method.is_some() {
            return Err("code_challenge_method was sent without a code_challenge".into());
        }
        if client.public {
            return Err(
                "PKCE is required: send a code_challenge with code_challenge_method=S256".into(),
            );
        }
        return Ok(None);
    };
    // RFC 7636 §4.3: an absent method means `plain`.
    let method = match method.unwrap_or("plain") {
        "S256" => Method::S256,
        "plain" if client.allow_plain_pkce => Method::Plain,
        "plain" => {
            return Err("this client must use code_challenge_method=S256".into());
        }
        _ => return Err("code_challenge_method must be S256".into()),
    };
    let well_formed = match method {
        // BASE64URL(SHA-256(verifier)) without padding: 43 characters.
        Method::S256 => value.len() == 43 && URL_SAFE_NO_PAD.decode(value).is_ok(),
        Method::Plain => valid_verifier(value),
    };
    if !well_formed {
        return Err("the code_challenge is malformed".into());
    }
    Ok(Some(Challenge {
        value: value.to_owned(),
        method,
    }))
}

/// Whether `verifier` answers `challenge`, in constant time.
pub fn verify(challenge: &Challenge, verifier: &str) -> bool {
    match challenge.method {
        Method::S256 => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            let computed = URL_SAFE_NO_PAD.encode(digest);
            ct_eq(computed.as_bytes(), challenge.value.as_bytes())
        }
        Method::Plain => ct_eq(verifier.as_bytes(), challenge.value.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(public: bool, plain: bool) -> ClientRecord {
        ClientRecord {
            client_id: "c".into(),
            name: "c".into(),
            side: splitgate_shared::Side::Storefront,
            public,
            secret_hash: None,
            grants: vec![],
            redirect_uris: vec![],
            scopes: vec![],
            skip_consent: false,
            allow_plain_pkce: plain,
            disabled: false,
            created_at: 0,
        }
    }

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn s256_matches_the_rfc_example() {
        let c = from_request(&client(true, false), Some(CHALLENGE), Some("S256"))
            .unwrap()
            .unwrap();
        assert!(verify(&c, VERIFIER));
        assert!(!verify(&c, &VERIFIER.replace('d', "e")));
    }

    #[test]
    fn request_rules() {
        let public = client(true, false);
        assert!(from_request(&public, None, None).is_err());
        assert!(from_request(&public, None, Some("S256")).is_err());
        assert!(
            from_request(&public, Some(CHALLENGE), None).is_err(),
            "plain by default"
        );
        assert!(from_request(&public, Some(CHALLENGE), Some("plain")).is_err());
        assert!(from_request(&public, Some(CHALLENGE), Some("s256")).is_err());
        assert!(from_request(&public, Some("short"), Some("S256")).is_err());
        assert!(from_request(&public, Some(&format!("{CHALLENGE}x")), Some("S256")).is_err());
        assert_eq!(from_request(&client(false, false), None, None), Ok(None));
        let plain = from_request(&client(true, true), Some(VERIFIER), Some("plain"))
            .unwrap()
            .unwrap();
        assert!(verify(&plain, VERIFIER));
        assert!(from_request(&client(true, true), Some("a b"), Some("plain")).is_err());
    }

    #[test]
    fn verifier_syntax() {
        assert!(valid_verifier(VERIFIER));
        assert!(valid_verifier(&"a~.-_".repeat(10)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}

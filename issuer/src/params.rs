//! Reading the parameters of the token, revocation and introspection
//! endpoints: form or JSON bodies (DESIGN §4), with the RFC 6749 §3.2 rules
//! (no repeated parameters; an empty value is an absent one), and client
//! authentication by HTTP Basic or in the body (RFC 6749 §2.3.1).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, Method, StatusCode, header};
use percent_encoding::percent_decode;
use serde::de::{Deserializer, MapAccess, Visitor};
use splitgate_shared::http::{Body, BodyError, content_length, read_body_limited};

use crate::error::{Code, OAuthError, OAuthResult};

/// The request's parameters, each present at most once and never empty.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> OAuthResult<&str> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("the `{name}` parameter is missing"))
        })
    }

    fn from_pairs(pairs: Vec<(String, String)>) -> OAuthResult<Params> {
        let mut kept: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        let mut seen: Vec<String> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if seen.contains(&k) {
                return Err(OAuthError::invalid_request(format!(
                    "the `{k}` parameter is repeated"
                )));
            }
            seen.push(k.clone());
            if !v.is_empty() {
                kept.push((k, v));
            }
        }
        Ok(Params { pairs: kept })
    }

    /// Parses `application/x-www-form-urlencoded` text strictly: invalid
    /// UTF-8 after decoding is an error, not replaced.
    pub fn from_form(body: &[u8]) -> OAuthResult<Params> {
        let mut pairs = Vec::new();
        for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let mut kv = part.splitn(2, |b| *b == b'=');
            let k = decode_form(kv.next().unwrap_or_default())?;
            let v = decode_form(kv.next().unwrap_or_default())?;
            pairs.push((k, v));
        }
        Params::from_pairs(pairs)
    }

    /// Parses a JSON object whose values are strings.
    pub fn from_json(body: &[u8]) -> OAuthResult<Params> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let pairs = de.deserialize_map(PairsVisitor).map_err(|e| {
            OAuthError::invalid_request(format!("the body is not a JSON object of strings: {e}"))
        })?;
        de.end()
            .map_err(|_| OAuthError::invalid_request("the body has data after its JSON object"))?;
        Params::from_pairs(pairs)
    }
}

pub(crate) fn decode_form(raw: &[u8]) -> OAuthResult<String> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    String::from_utf8(percent_decode(&plus_as_space).collect())
        .map_err(|_| OAuthError::invalid_request("the form body is not valid UTF-8"))
}

/// Collects a JSON object's members in order, keeping duplicates so that
/// they can be refused (serde_json's maps silently keep the last).
struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object whose values are strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<serde_json::Value>()?;
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                _ => {
                    return Err(serde::de::Error::custom(format_args!(
                        "`{key}` must be a string"
                    )));
                }
            };
            out.push((key, value));
        }
        Ok(out)
    }
}

/// Reads a POSTed parameter body within `limit` bytes.
pub async fn read(
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> OAuthResult<Params> {
    if method != Method::POST {
        return Err(
            OAuthError::invalid_request("use POST").with_status(StatusCode::METHOD_NOT_ALLOWED)
        );
    }
    let kind = body_kind(headers)?;
    let bytes = match read_body_limited(body, content_length(headers), limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            return Err(OAuthError::invalid_request(format!(
                "the request body is larger than {limit} bytes"
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        Err(BodyError::Read(_)) => {
            return Err(OAuthError::invalid_request(
                "the request body could not be read",
            ));
        }
    };
    match kind {
        BodyKind::Form => Params::from_form(&bytes),
        BodyKind::Json => Params::from_json(&bytes),
    }
}

enum BodyKind {
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap) -> OAuthResult<BodyKind> {
    let wrong = || {
        OAuthError::invalid_request(
            "the Content-Type must be application/x-www-form-urlencoded or application/json",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(wrong)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for param in parts {
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset")
            && !val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(OAuthError::invalid_request(
                "only the UTF-8 charset is supported",
            ));
        }
    }
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "application/json" => Ok(BodyKind::Json),
        _ => Err(wrong()),
    }
}

/// How the client presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    /// A public client sending only its `client_id`.
    None,
}

/// The client's claimed identity; not yet checked.
#[derive(Clone)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: Option<String>,
    pub method: AuthMethod,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Takes the client's credentials from `Authorization: Basic` or from the
/// body's `client_id`/`client_secret`; both at once is refused.
pub fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
    realm: &str,
) -> OAuthResult<ClientCredentials> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(parse_basic(value.as_bytes()).map_err(|e| e.basic(realm))?),
        None => None,
    };
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "authenticate the client with HTTP Basic or with client_secret in the body, not both",
                ));
            }
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the HTTP Basic user",
                ));
            }
            Ok(ClientCredentials {
                id,
                secret: Some(secret),
                method: AuthMethod::Basic,
            })
        }
        None => match body_id {
            Some(id) => Ok(ClientCredentials {
                id: id.to_owned(),
                secret: body_secret.map(str::to_owned),
                method: if body_secret.is_some() {
                    AuthMethod::Post
                } else {
                    AuthMethod::None
                },
            }),
            None => Err(OAuthError::new(
                Code::InvalidClient,
                "client authentication is required (HTTP Basic, or client_id and client_secret in the body)",
            )),
        },
    }
}

impl OAuthError {
    /// Adds `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    pub fn basic(mut self, realm: &str) -> Self {
        if self.code == Code::InvalidClient {
            self.basic_realm = Some(realm.to_owned());
        }
        self
    }
}

fn parse_basic(value: &[u8]) -> OAuthResult<(String, String)> {
    let bad = || {
        OAuthError::new(
            Code::InvalidClient,
            "the Authorization header is not valid HTTP Basic",
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::new(
            Code::InvalidClient,
            "the Authorization header must use the Basic scheme here",
        ));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both halves are form-urlencoded before encoding.
    let id = decode_form(id.as_bytes()).map_err(|_| bad())?;
    let secret = decode_form(secret.as_bytes()).map_err(|_| bad())?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_rules() {
        let p = Params::from_form(b"a=1&b=&c=x+y%21").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None, "empty means absent");
        assert_eq!(p.get("c"), Some("x y!"));
        let e = Params::from_form(b"a=1&a=2").unwrap_err();
        assert_eq!(e.description, "the `a` parameter is repeated");
        assert!(Params::from_form(b"a=%ff").is_err());
    }

    #[test]
    fn json_rules() {
        let p = Params::from_json(br#"{"grant_type":"password","scope":""}"#).unwrap();
        assert_eq!(p.get("grant_type"), Some("password"));
        assert_eq!(p.get("scope"), None);
        assert_eq!(
            Params::from_json(br#"{"a":"1","a":"2"}"#)
                .unwrap_err()
                .description,
            "the `a` parameter is repeated"
        );
        assert!(Params::from_json(br#"{"a":1}"#).is_err());
        assert!(Params::from_json(br#"["a"]"#).is_err());
        assert!(Params::from_json(br#"{"a":"1"} x"#).is_err());
    }

    #[test]
    fn basic_is_form_decoded() {
        let value = format!("Basic {}", STANDARD.encode("my%3Aid:s%26cret"));
        assert_eq!(
            parse_basic(value.as_bytes()).unwrap(),
            ("my:id".into(), "s&cret".into())
        );
        assert!(parse_basic(b"Bearer x").is_err());
        assert!(parse_basic(b"Basic !!!").is_err());
    }
}

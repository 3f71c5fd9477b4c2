//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3): its query
//! read strictly and checked in the order that decides who hears about a
//! mistake.
//!
//! Until the client and its redirect URI are known to be genuine, an error
//! is shown to the person in the browser and never redirected (RFC 6749
//! §4.1.2.1): a redirect to an unchecked URI would make this server an open
//! redirector. Every later error goes back to the client's redirect URI.

use splitgate_shared::Side;
use splitgate_shared::StoreError;

use crate::Ctx;
use crate::clients::{self, ClientRecord, Grant};
use crate::redirect::find_match;
use crate::scope;

use super::pkce::{self, Challenge};

/// Longest query accepted on the authorize endpoints.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Longest `state` echoed back.
const MAX_STATE_BYTES: usize = 1024;

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client: ClientRecord,
    /// Where the answer goes: the presented URI (a loopback one may carry
    /// its own port), or the client's only registered one.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the request (the token request must
    /// then repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    /// The granted scope, space-separated.
    pub scope: String,
    pub challenge: Option<Challenge>,
    /// The query as received, to return to after login.
    pub query: String,
}

/// Where a client's answer goes, once its redirect URI is trusted.
#[derive(Debug, Clone)]
pub struct Target {
    pub redirect_uri: String,
    pub state: Option<String>,
}

/// Why an authorization request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Shown to the person; never redirected.
    Page(PageFault),
    /// Sent back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// An error page's cause (see `pages::fault`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFault {
    /// 400: the request cannot be trusted.
    BadRequest(String),
    /// 404: the client belongs to the other side.
    OtherSide,
    /// 503: the store did not answer.
    Unavailable,
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(cause = %e, "store call failed on an authorize page");
        Refusal::Page(PageFault::Unavailable)
    }
}

fn page(message: impl Into<String>) -> Refusal {
    Refusal::Page(PageFault::BadRequest(message.into()))
}

/// A query's parameters in order, strictly decoded, empty values dropped
/// (RFC 6749 §3.1: a parameter without a value is an omitted one).
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// A parameter that appears more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeated(pub String);

impl Query {
    pub fn parse(raw: &str) -> Result<Query, String> {
        if raw.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "The sign-in request is longer than {MAX_QUERY_BYTES} bytes."
            ));
        }
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let bad = |_| "The sign-in request is not valid UTF-8.".to_owned();
            let k = crate::params::decode_form(k.as_bytes()).map_err(bad)?;
            let v = crate::params::decode_form(v.as_bytes()).map_err(bad)?;
            pairs.push((k, v));
        }
        Ok(Query { pairs })
    }

    /// The one non-empty value of `name`; a name given twice (even once
    /// empty) is an error.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut found = self.pairs.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if found.next().is_some() {
            return Err(Repeated(name.to_owned()));
        }
        Ok(first.map(|(_, v)| v.as_str()).filter(|v| !v.is_empty()))
    }

    /// The first parameter name that appears twice.
    pub fn first_repeated(&self) -> Option<&str> {
        self.pairs.iter().enumerate().find_map(|(i, (k, _))| {
            self.pairs[..i]
                .iter()
                .any(|(seen, _)| seen == k)
                .then_some(k.as_str())
        })
    }
}

/// Finds the client and checks that it belongs to `side`; both failures
/// are pages.
async fn client_of(
    ctx: &Ctx,
    tenant: &str,
    side: Side,
    query: &Query,
) -> Result<ClientRecord, Refusal> {
    let client_id = query
        .one("client_id")
        .map_err(|_| page("The client_id parameter is repeated."))?
        .ok_or_else(|| page("The request does not name an application (client_id is missing)."))?;
    let client = clients::get(&ctx.store, tenant, client_id)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(|| page("The application that sent you here is not registered."))?;
    if client.side != side {
        return Err(Refusal::Page(PageFault::OtherSide));
    }
    Ok(client)
}

/// The redirect URI to answer at: the presented one if it matches a
/// registered one, else the only registered one.
fn target_of(client: &ClientRecord, query: &Query) -> Result<(String, bool), Refusal> {
    let presented = query
        .one("redirect_uri")
        .map_err(|_| page("The redirect_uri parameter is repeated."))?;
    match presented {
        Some(uri) => match find_match(&client.redirect_uris, uri) {
            Some(_) => Ok((uri.to_owned(), true)),
            None => Err(page(
                "The redirect URI is not registered for this application.",
            )),
        },
        None => match client.redirect_uris.as_slice() {
            [only] => Ok((only.clone(), false)),
            [] => Err(page("This application has no registered redirect URI.")),
            _ => Err(page(
                "This application has several redirect URIs: the request must name one (redirect_uri).",
            )),
        },
    }
}

/// Checks an authorization request for `side`.
pub async fn validate(
    ctx: &Ctx,
    tenant: &str,
    side: Side,
    raw_query: &str,
) -> Result<AuthRequest, Refusal> {
    let query = Query::parse(raw_query).map_err(page)?;
    let client = client_of(ctx, tenant, side, &query).await?;
    let (redirect_uri, redirect_uri_sent) = target_of(&client, &query)?;
    // From here on the redirect URI is trusted: errors go back to it.
    let (state, state_error) = match query.one("state") {
        Ok(Some(s)) if s.len() > MAX_STATE_BYTES => (
            None,
            Some(format!("state is longer than {MAX_STATE_BYTES} bytes")),
        ),
        Ok(s) => (s.map(str::to_owned), None),
        Err(_) => (None, Some("the `state` parameter is repeated".to_owned())),
    };
    let refuse = |error: &'static str, description: String| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    if let Some(description) = state_error {
        return Err(refuse("invalid_request", description));
    }
    if let Some(name) = query.first_repeated() {
        return Err(refuse(
            "invalid_request",
            format!("the `{name}` parameter is repeated"),
        ));
    }
    let one = |name: &str| query.one(name).ok().flatten();
    match one("response_type") {
        None => {
            return Err(refuse(
                "invalid_request",
                "the `response_type` parameter is missing".into(),
            ));
        }
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "only the response type `code` is supported".into(),
            ));
        }
    }
    if !client.allows(Grant::AuthorizationCode) {
        return Err(refuse(
            "unauthorized_client",
            "this client may not use the authorization code flow".into(),
        ));
    }
    let scope = scope::resolve(one("scope"), &client.scopes)
        .map_err(|e| refuse(e.code.as_str(), e.description))?;
    let challenge =
        pkce::from_request(&client, one("code_challenge"), one("code_challenge_method"))
            .map_err(|description| refuse("invalid_request", description))?;
    Ok(AuthRequest {
        client,
        redirect_uri,
        redirect_uri_sent,
        state,
        scope,
        challenge,
        query: raw_query.to_owned(),
    })
}

impl AuthRequest {
    pub fn target(&self) -> Target {
        Target {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_rules() {
        let q = Query::parse("a=1&b=&c=x+y%21&a=2").unwrap();
        assert_eq!(q.one("a"), Err(Repeated("a".into())));
        assert_eq!(q.one("b"), Ok(None));
        assert_eq!(q.one("c"), Ok(Some("x y!")));
        assert_eq!(q.one("d"), Ok(None));
        assert_eq!(q.first_repeated(), Some("a"));
        assert_eq!(Query::parse("a=1&b=2").unwrap().first_repeated(), None);
        assert!(Query::parse("a=%ff").is_err());
        assert!(Query::parse(&"a".repeat(MAX_QUERY_BYTES + 1)).is_err());
        let empty_twice = Query::parse("s=&s=x").unwrap();
        assert_eq!(empty_twice.one("s"), Err(Repeated("s".into())));
    }
}

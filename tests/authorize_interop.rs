//! The code flow with an independent OAuth client crate (`oauth2`): it
//! builds the authorization URL with its own PKCE S256 challenge and state,
//! the login and consent forms are posted over plain HTTP, and it exchanges
//! the code with its verifier. Its tokens work at the gateway on their side;
//! its second exchange of the same code is refused and revokes them.

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::{ACME_BACKOFFICE, ACME_STOREFRONT, Agent, Side};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde_json::json;
use support::{Server, claims};

const REDIRECT: &str = "http://127.0.0.1:40123/callback";

async fn api_status(s: &Server, side: &Side, path: &str, token: &str) -> u16 {
    s.http
        .get(s.url(side.host, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn oauth2_crate_pkce_flow_on_each_side() {
    let (s, backend) = browser::start_with_backend("").await;
    let http = support::oauth2_http(&s);
    for (side, other_api) in [
        (ACME_BACKOFFICE, "/api/orders"),
        (ACME_STOREFRONT, "/admin/api/orders"),
    ] {
        side.user(&s).await;
        let (client_id, _) = s
            .client(
                side.tenant,
                json!({"side": side.name, "name": "oauth2 crate", "public": true,
                       "redirect_uris": ["http://127.0.0.1/callback"], "scopes": ["read", "write"]}),
            )
            .await;
        let client = BasicClient::new(ClientId::new(client_id.clone()))
            .set_auth_uri(AuthUrl::new(side.authorize(&s, &[])).unwrap())
            .set_token_uri(TokenUrl::new(s.url(side.host, "/oauth2-token")).unwrap())
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("read".into()))
            .set_pkce_challenge(challenge)
            .url();
        assert_eq!(
            browser::param(url.as_str(), "code_challenge_method").as_deref(),
            Some("S256")
        );

        // The person logs in and allows; the client reads its redirect.
        let location = side.approve(&s, &mut Agent::new(&s), url.as_str()).await;
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(
            browser::param(&location, "state").as_deref(),
            Some(state.secret().as_str())
        );
        assert_eq!(browser::param(&location, "iss"), Some(side.iss()));
        let code = browser::param(&location, "code").unwrap();

        // A wrong verifier is refused and does not spend the code.
        let wrong = client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .set_pkce_verifier(PkceCodeChallenge::new_random_sha256().1)
            .request_async(&http)
            .await;
        match wrong {
            Err(RequestTokenError::ServerResponse(e)) => {
                assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant);
                assert_eq!(
                    e.error_description().map(String::as_str),
                    Some("the code_verifier does not match the code_challenge")
                );
            }
            other => panic!("expected invalid_grant, got {other:?}"),
        }

        let verifier_text = verifier.secret().clone();
        let token = client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{}: code exchange: {e:?}", side.name));
        assert!(token.refresh_token().is_some());
        let access = token.access_token().secret().clone();
        let c = claims(&access);
        assert_eq!(c["iss"], side.iss());
        assert_eq!(c["sub"], side.login);
        assert_eq!(c["kind"], side.kind);
        assert_eq!(c["scope"], "read");
        assert_eq!(
            api_status(&s, &side, &side.path("/api/orders"), &access).await,
            200
        );
        assert_eq!(
            backend.requests().pop().unwrap().auth("subject"),
            Some(side.login)
        );
        assert_eq!(api_status(&s, &side, other_api, &access).await, 401);

        // The same code again: invalid_grant, and the first tokens die.
        let replay = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier_text))
            .request_async(&http)
            .await;
        match replay {
            Err(RequestTokenError::ServerResponse(e)) => {
                assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant)
            }
            other => panic!("expected invalid_grant, got {other:?}"),
        }
        assert_eq!(
            api_status(&s, &side, &side.path("/api/orders"), &access).await,
            401
        );
        let refreshed = client
            .exchange_refresh_token(token.refresh_token().unwrap())
            .request_async(&http)
            .await;
        assert!(
            matches!(refreshed, Err(RequestTokenError::ServerResponse(ref e)) if *e.error() == BasicErrorResponseType::InvalidGrant),
            "{refreshed:?}"
        );
    }
    s.stop().await;
}

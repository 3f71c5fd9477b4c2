//! The authorize pages: server-rendered HTML (minijinja, templates under
//! `issuer/templates/`, compiled in, HTML autoescaping always on), no
//! JavaScript, one small inline style sheet, readable on a phone, with the
//! tenant's name on every page.
//!
//! Every page is sent with headers that keep it out of frames, caches and
//! `Referer`s, and a content security policy that allows nothing but its
//! own style and its forms. The forms post to this server; when a form's
//! answer redirects to the client (the code), browsers check the redirect
//! against `form-action` too, so pages of an authorization request also
//! allow the origin of that request's (already verified) redirect URI.

use std::sync::OnceLock;

use http::{HeaderValue, Response, StatusCode, header};
use minijinja::{AutoEscape, Environment, Value, context};
use splitgate_shared::http::{Body, full};
use splitgate_shared::{Side, StoreError, Tenant};

use super::params::PageFault;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("login.html", include_str!("../../templates/login.html")),
            ("consent.html", include_str!("../../templates/consent.html")),
            ("message.html", include_str!("../../templates/message.html")),
        ] {
            // The templates are compiled in; the unit tests render each.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(cause = %e, template = name, "template does not compile");
            }
        }
        env
    })
}

/// How each side calls its accounts and login names.
fn side_context(tenant: &Tenant, side: Side) -> Value {
    let (side_label, account_label, username_label, username_type) = match side {
        Side::Backoffice => ("Back office", "back-office account", "Username", "text"),
        Side::Storefront => ("Storefront", "customer account", "Email", "email"),
    };
    context! {
        tenant => tenant.name.as_str(),
        side_label,
        account_label,
        username_label,
        username_type,
    }
}

/// A rendered page, ready to be sent.
pub struct Page {
    pub status: StatusCode,
    pub html: String,
    pub cookies: Vec<String>,
    /// The client's redirect URI, whose origin the page's forms may end at.
    pub returns_to: Option<String>,
}

/// Renders `template` with the side's context and `values`.
pub fn render(tenant: &Tenant, side: Side, template: &str, values: Value) -> Page {
    let merged = context! { ..side_context(tenant, side), ..values };
    let html = templates()
        .get_template(template)
        .and_then(|t| t.render(merged))
        .unwrap_or_else(|e| {
            tracing::error!(cause = %e, template, "page rendering failed");
            "<!doctype html><title>Error</title><p>This page could not be shown.</p>".to_owned()
        });
    Page {
        status: StatusCode::OK,
        html,
        cookies: Vec::new(),
        returns_to: None,
    }
}

impl Page {
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn cookie(mut self, set_cookie: Option<String>) -> Self {
        self.cookies.extend(set_cookie);
        self
    }

    pub fn returns_to(mut self, redirect_uri: &str) -> Self {
        self.returns_to = Some(redirect_uri.to_owned());
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let form_action = match self.returns_to.as_deref().and_then(csp_source) {
            Some(source) => format!("'self' {source}"),
            None => "'self'".to_owned(),
        };
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        );
        let mut response = Response::new(full(self.html));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(value) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        secure_headers(headers);
        set_cookies(headers, &self.cookies);
        response
    }
}

/// Headers of every page and redirect: no framing, no caching, no
/// `Referer` (the URLs carry codes and states).
fn secure_headers(headers: &mut http::HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn set_cookies(headers: &mut http::HeaderMap, cookies: &[String]) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// A CSP source expression for the origin of a redirect URI: `scheme://host[:port]`
/// for http(s), `scheme:` for a private-use scheme. `None` for anything
/// that would not be a single, harmless token.
fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let source = match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    };
    source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-+:/[]".contains(&b))
        .then_some(source)
}

/// A redirect (302 after a GET, 303 after a form POST).
pub fn redirect(status: StatusCode, location: &str, cookies: &[String]) -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
    }
    secure_headers(response.headers_mut());
    set_cookies(response.headers_mut(), cookies);
    response
}

/// A page with a title and one message.
pub fn message(
    tenant: &Tenant,
    side: Side,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Page {
    render(tenant, side, "message.html", context! { title, message }).status(status)
}

/// The page of an authorization request that cannot be answered by
/// redirect.
pub fn fault(tenant: &Tenant, side: Side, fault: &PageFault) -> Page {
    match fault {
        PageFault::BadRequest(why) => message(
            tenant,
            side,
            StatusCode::BAD_REQUEST,
            "Sign-in request not valid",
            why,
        ),
        PageFault::OtherSide => message(
            tenant,
            side,
            StatusCode::NOT_FOUND,
            "Not found",
            "This application does not sign in here.",
        ),
        PageFault::Unavailable => unavailable(tenant, side),
    }
}

/// 503 for a store that did not answer (the cause is logged, not shown).
pub fn store_failed(tenant: &Tenant, side: Side, e: &StoreError) -> Response<Body> {
    tracing::error!(cause = %e, tenant = %tenant.id, "store call failed on an authorize page");
    unavailable(tenant, side).into_response()
}

pub fn unavailable(tenant: &Tenant, side: Side) -> Page {
    message(
        tenant,
        side,
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Sign-in is unavailable at the moment. Try again in a minute.",
    )
}

/// 403 for a form whose CSRF token or session does not check out.
pub fn forged(tenant: &Tenant, side: Side) -> Page {
    message(
        tenant,
        side,
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form could not be verified: it has expired or was not sent from this site. Go back to the application and start again.",
    )
}

/// 400 for a login or consent form submitted twice or too late.
pub fn spent(tenant: &Tenant, side: Side) -> Page {
    message(
        tenant,
        side,
        StatusCode::BAD_REQUEST,
        "Form already used",
        "This form was already submitted or has expired. Go back to the application and start again.",
    )
}

/// 405 with `Allow`.
pub fn wrong_method(tenant: &Tenant, side: Side, allow: &'static str) -> Response<Body> {
    let mut response = message(
        tenant,
        side,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        &format!("Use {allow} here."),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme <Shop>".into(),
            hosts: vec![],
            base_url: "https://acme.test".into(),
            backend_prefix: "/admin".into(),
            upstream: http::Uri::from_static("http://127.0.0.1:9"),
            signing_alg: splitgate_shared::keys::SigningAlg::Rs256,
            access_token_ttl: std::time::Duration::from_secs(60),
            refresh_token_ttl: std::time::Duration::from_secs(60),
            auth_code_ttl: std::time::Duration::from_secs(60),
            visitor_ttl: std::time::Duration::from_secs(60),
            cors_origins: vec![],
            tls: None,
        }
    }

    #[test]
    fn every_template_renders_and_escapes() {
        let t = tenant();
        let login = render(
            &t,
            Side::Storefront,
            "login.html",
            context! { client => "<script>", error => "x", username => "\"a\"", csrf => "c", form => "f", action => "/a" },
        );
        assert!(login.html.contains("Acme &lt;Shop&gt;"), "{}", login.html);
        assert!(login.html.contains("<strong>&lt;script&gt;</strong>"));
        assert!(login.html.contains("value=\"&quot;a&quot;\""));
        assert!(login.html.contains("type=\"email\""));
        assert!(!login.html.contains("<script"));
        let consent = render(
            &t,
            Side::Backoffice,
            "consent.html",
            context! { client => "App", scopes => vec!["read"], subject => "ann", query => "a=1&b=2", csrf => "c", form => "f" },
        );
        assert!(consent.html.contains("<code>read</code>"));
        assert!(consent.html.contains("value=\"a=1&amp;b=2\""));
        assert!(consent.html.contains("Back office"));
        let page = message(&t, Side::Storefront, StatusCode::NOT_FOUND, "T", "M");
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.html.contains("<p class=\"message\">M</p>"));
    }

    #[test]
    fn csp_names_only_clean_origins() {
        assert_eq!(
            csp_source("http://127.0.0.1:5000/cb?x=1").as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(
            csp_source("https://app.example.com/cb").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            csp_source("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(csp_source("https://a;b.example/cb"), None);
    }
}

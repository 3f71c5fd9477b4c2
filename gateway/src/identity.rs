//! The identity layer (DESIGN §5): tells the backend who is calling, in
//! `X-Auth-*` headers taken from the verified claims. The client's own
//! `X-Auth-*` headers were removed by the tenant layer, so whatever the
//! backend sees under that name comes from here. `Authorization` goes on
//! to the backend unless `gateway.forward_authorization = false`.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use splitgate_shared::Tenant;
use splitgate_shared::http::Body;

use crate::authn::Authenticated;
use crate::error::{Refusal, Reject, TokenError};
use crate::gate::{Gate, gate_layer};

pub const X_AUTH_TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");
pub const X_AUTH_SIDE: HeaderName = HeaderName::from_static("x-auth-side");
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
pub const X_AUTH_KIND: HeaderName = HeaderName::from_static("x-auth-kind");
pub const X_AUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");
pub const X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");
pub const X_AUTH_TOKEN_ID: HeaderName = HeaderName::from_static("x-auth-token-id");

#[derive(Clone, Copy)]
pub struct IdentityLayer {
    forward_authorization: bool,
}

impl IdentityLayer {
    pub fn new(forward_authorization: bool) -> Self {
        IdentityLayer {
            forward_authorization,
        }
    }

    fn apply(&self, req: &mut Request<Body>) -> Result<(), Refusal> {
        let (Some(tenant), Some(auth)) = (
            req.extensions().get::<Arc<Tenant>>().cloned(),
            req.extensions().get::<Authenticated>().cloned(),
        ) else {
            return Err(Reject::Internal.into());
        };
        let c = &auth.claims;
        let headers = req.headers_mut();
        let set = |headers: &mut HeaderMap, name: HeaderName, value: &str| {
            // Claims are the issuer's, but a value that cannot be a header
            // (a control character) must not be passed on half-way.
            HeaderValue::from_str(value)
                .or_else(|_| HeaderValue::from_bytes(value.as_bytes()))
                .map(|v| {
                    headers.insert(name, v);
                })
                .map_err(|_| Refusal::bearer(TokenError::Unforwardable, &tenant, auth.side))
        };
        set(headers, X_AUTH_TENANT, &tenant.id)?;
        set(headers, X_AUTH_SIDE, auth.side.as_str())?;
        set(headers, X_AUTH_SUBJECT, &c.sub)?;
        set(headers, X_AUTH_KIND, c.kind.as_str())?;
        set(headers, X_AUTH_CLIENT_ID, &c.client_id)?;
        set(headers, X_AUTH_SCOPE, &c.scope)?;
        set(headers, X_AUTH_TOKEN_ID, &c.jti)?;
        if !self.forward_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        Ok(())
    }
}

gate_layer!(IdentityLayer);

impl Gate for IdentityLayer {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        self.apply(req).map_err(Refusal::response)
    }
}

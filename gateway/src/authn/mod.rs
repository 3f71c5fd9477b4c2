//! The bearer authentication layer (DESIGN §5, STYLE 5): reads the token,
//! verifies it for the tenant and the route's side, and puts the verified
//! claims into the request's extensions as [`Authenticated`]. Nothing after
//! it parses the token again.

mod bearer;
mod cache;
pub mod verify;

use std::sync::Arc;

use http::{Request, Response};
use splitgate_shared::http::Body;
use splitgate_shared::side::Side;
use splitgate_shared::{AccessClaims, Tenant};

pub use verify::Verifier;

use crate::error::{BearerError, Refusal, Reject};
use crate::gate::{Gate, gate_layer};
use crate::route::Route;

/// A verified token, in the request's extensions.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: Arc<AccessClaims>,
    /// The side the token was verified for: the route's.
    pub side: Side,
}

#[derive(Clone)]
pub struct AuthnLayer {
    verifier: Arc<Verifier>,
    max_token_bytes: usize,
}

impl AuthnLayer {
    pub fn new(verifier: Arc<Verifier>, max_token_bytes: usize) -> Self {
        AuthnLayer {
            verifier,
            max_token_bytes,
        }
    }
}

gate_layer!(AuthnLayer);

impl Gate for AuthnLayer {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        self.authenticate(req).map_err(Refusal::response)
    }
}

impl AuthnLayer {
    /// `Ok` with the claims in the extensions, or the refusal.
    fn authenticate(&self, req: &mut Request<Body>) -> Result<(), Refusal> {
        let tenant = req.extensions().get::<Arc<Tenant>>().cloned();
        let route = req.extensions().get::<Route>().copied();
        // Default deny: only a request routed to an API reaches this layer.
        let (Some(tenant), Some(Route::Api(side))) = (tenant, route) else {
            return Err(Reject::Internal.into());
        };
        let refuse = |e: BearerError| Refusal::bearer(e, &tenant, side);
        if bearer::query_has_token(req.uri().query()) {
            return Err(refuse(BearerError::InvalidRequest(
                "send the access token in the Authorization header, not the query string",
            )));
        }
        let token = bearer::token_from(req.headers(), self.max_token_bytes).map_err(refuse)?;
        let claims = self
            .verifier
            .verify(&tenant, side, token)
            .map_err(|e| refuse(e.into()))?;
        req.extensions_mut().insert(Authenticated { claims, side });
        Ok(())
    }
}

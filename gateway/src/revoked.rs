//! The revocation layer (DESIGN §5): refuses a verified token that has
//! been revoked, by `jti`, by `sid` (its whole refresh family) or by
//! "subject before time T", against the in-memory [`RevocationView`] that
//! the store's change events keep current. No store round trip per request.
//!
//! A view that has lost its feed for longer than
//! `gateway.revocation_max_staleness` can no longer vouch for anything, so
//! authenticated requests get 503 then, unless `revocation_fail_open`.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use splitgate_shared::Tenant;
use splitgate_shared::http::Body;
use splitgate_shared::revocation::RevocationView;

use crate::authn::Authenticated;
use crate::error::{Refusal, Reject, TokenError};
use crate::gate::{Gate, gate_layer};

#[derive(Clone)]
pub struct RevocationLayer {
    view: Arc<RevocationView>,
    max_staleness_ms: u64,
    fail_open: bool,
}

impl RevocationLayer {
    pub fn new(view: Arc<RevocationView>, max_staleness: Duration, fail_open: bool) -> Self {
        RevocationLayer {
            view,
            max_staleness_ms: u64::try_from(max_staleness.as_millis()).unwrap_or(u64::MAX),
            fail_open,
        }
    }

    fn refusal(&self, req: &Request<Body>) -> Result<(), Refusal> {
        let (Some(tenant), Some(auth)) = (
            req.extensions().get::<Arc<Tenant>>(),
            req.extensions().get::<Authenticated>(),
        ) else {
            return Err(Reject::Internal.into());
        };
        let c = &auth.claims;
        let (stale, revoked) = self.view.check(&tenant.id, &c.jti, &c.sid, &c.sub, c.iat);
        if !self.fail_open && stale.is_some_and(|ms| ms > self.max_staleness_ms) {
            return Err(Reject::RevocationUnavailable.into());
        }
        if revoked {
            return Err(Refusal::bearer(TokenError::Revoked, tenant, auth.side));
        }
        Ok(())
    }
}

gate_layer!(RevocationLayer);

impl Gate for RevocationLayer {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        self.refusal(req).map_err(Refusal::response)
    }
}

//! The revocation layer (DESIGN §5): refuses a verified token that has
//! been revoked, by `jti`, by `sid` (its whole refresh family) or by
//! "subject before time T", against the in-memory [`RevocationView`] that
//! the store's change events keep current. No store round trip per request.
//!
//! A view that has lost its feed for longer than
//! `gateway.revocation_max_staleness` can no longer vouch for anything, so
//! authenticated requests get 503 then, unless `revocation_fail_open`.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use splitgate_shared::Tenant;
use splitgate_shared::http::Body;
use splitgate_shared::revocation::RevocationView;
use tower::{Layer, Service};

use crate::authn::Authenticated;
use crate::error::{Refusal, Reject, TokenError};

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

    fn check(&self, req: &Request<Body>) -> Result<(), Refusal> {
        let (Some(tenant), Some(auth)) = (
            req.extensions().get::<Arc<Tenant>>(),
            req.extensions().get::<Authenticated>(),
        ) else {
            return Err(Reject::Internal.into());
        };
        if !self.fail_open
            && self
                .view
                .stale_for_ms()
                .is_some_and(|stale| stale > self.max_staleness_ms)
        {
            return Err(Reject::RevocationUnavailable.into());
        }
        let c = &auth.claims;
        if self
            .view
            .is_revoked(&tenant.id, &c.jti, &c.sid, &c.sub, c.iat)
        {
            return Err(Refusal::bearer(TokenError::Revoked, tenant, auth.side));
        }
        Ok(())
    }
}

impl<S> Layer<S> for RevocationLayer {
    type Service = Revocation<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Revocation {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Revocation<S> {
    inner: S,
    layer: RevocationLayer,
}

type Answer = Ready<Result<Response<Body>, std::convert::Infallible>>;

impl<S> Service<Request<Body>> for Revocation<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = std::convert::Infallible>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Either<Answer, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.layer.check(&req) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(refusal) => Either::Left(ready(Ok(refusal.response()))),
        }
    }
}

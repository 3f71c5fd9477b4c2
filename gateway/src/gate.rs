//! The one shape of the gateway's checking layers (tenant, route, header
//! limit, authn, revocation, identity): look at a request, perhaps change
//! it in place, and either pass it on or answer it. This is tower-http's
//! `async_require_authorization` shape, synchronous, so that each layer's
//! module holds only its own rule and the service plumbing exists once.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use splitgate_shared::http::Body;
use tower::Service;

/// A rule applied to every request passing a layer.
pub trait Gate: Clone {
    /// `Ok` passes the (possibly changed) request on; `Err` is the answer,
    /// and the inner service is never called.
    // The answer is returned by value: boxing it would cost an allocation
    // on every refusal to save a move.
    #[allow(clippy::result_large_err)]
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>>;
}

/// The service of a [`Gate`] layer: the gate, then `inner`.
#[derive(Clone)]
pub struct Gated<G, S> {
    gate: G,
    inner: S,
}

impl<G, S> Gated<G, S> {
    pub fn new(gate: G, inner: S) -> Self {
        Gated { gate, inner }
    }
}

impl<G, S> Service<Request<Body>> for Gated<G, S>
where
    G: Gate,
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match self.gate.check(&mut req) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(answer) => Either::Left(ready(Ok(answer))),
        }
    }
}

/// Makes a [`Gate`] a tower `Layer` whose service is [`Gated`].
macro_rules! gate_layer {
    ($layer:ty) => {
        impl<S> tower::Layer<S> for $layer {
            type Service = $crate::gate::Gated<$layer, S>;

            fn layer(&self, inner: S) -> Self::Service {
                $crate::gate::Gated::new(self.clone(), inner)
            }
        }
    };
}

pub(crate) use gate_layer;

//! Limits that apply before any routing: the total size of the request
//! headers (431 past `gateway.max_header_bytes`), and the mapping of the
//! timeout and load-shedding layers' errors to responses, so that the
//! outermost service is infallible and no error ever reaches hyper.
//!
//! hyper enforces its own, larger bound while reading the head (see
//! [`crate::server_options`]); past that it answers 431 itself, without a
//! body, and closes the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::future::{self, Either, Ready};
use http::{Request, Response};
use pin_project_lite::pin_project;
use splitgate_shared::http::{Body, BoxError};
use tower::{Layer, Service};

use crate::error::Reject;
use crate::gate::{Gate, gate_layer};

/// What an error of tower's timeout and load-shed layers means: 408 and
/// 503; anything else is a bug, answered 500.
fn rescue(error: BoxError) -> Reject {
    if error.is::<tower::timeout::error::Elapsed>() {
        Reject::RequestTimeout
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        Reject::Overloaded
    } else {
        tracing::error!(cause = %error, "unexpected error in the gateway stack");
        Reject::Internal
    }
}

/// Makes the stack below infallible: every error (from `poll_ready` or
/// from the response future) becomes its response.
#[derive(Clone, Copy, Default)]
pub struct RescueLayer;

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rescue {
            inner,
            failed: None,
        }
    }
}

#[derive(Clone)]
pub struct Rescue<S> {
    inner: S,
    /// A `poll_ready` error, answered by the next `call`.
    failed: Option<Reject>,
}

impl<S> Service<Request<Body>> for Rescue<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future =
        Either<Ready<Result<Response<Body>, std::convert::Infallible>>, RescueFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.failed.is_none()
            && let Err(e) = ready!(self.inner.poll_ready(cx))
        {
            self.failed = Some(rescue(e.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        match self.failed.take() {
            Some(reject) => Either::Left(future::ready(Ok(reject.response()))),
            None => Either::Right(RescueFuture {
                inner: self.inner.call(req),
            }),
        }
    }
}

pin_project! {
    pub struct RescueFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, E> Future for RescueFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = ready!(self.project().inner.poll(cx));
        Poll::Ready(Ok(result.unwrap_or_else(|e| rescue(e.into()).response())))
    }
}

#[derive(Clone, Copy)]
pub struct HeaderLimitLayer {
    max_bytes: usize,
}

impl HeaderLimitLayer {
    pub fn new(max_bytes: usize) -> Self {
        HeaderLimitLayer { max_bytes }
    }
}

gate_layer!(HeaderLimitLayer);

impl Gate for HeaderLimitLayer {
    fn check(&self, req: &mut Request<Body>) -> Result<(), Response<Body>> {
        // Counted as on the wire: `name: value\r\n`.
        let size: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if size > self.max_bytes {
            return Err(Reject::HeadersTooLarge.response());
        }
        Ok(())
    }
}

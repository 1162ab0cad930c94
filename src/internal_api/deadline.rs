//! The body deadline of the internal API (contract §6 `header_read_timeout`):
//! a body must have arrived in full `header_read_timeout` after its headers,
//! else reading it fails and the request is answered 408 `REQUEST_TIMEOUT`.
//!
//! tower-http's `RequestBodyTimeoutLayer` will not do: its timer restarts
//! with every chunk, so a body sent a byte at a time never times out.

use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, BodyDataStream, Bytes, HttpBody};
use axum::extract::{Request, State};
use futures_util::Stream;
use tokio::time::{Instant, Sleep, sleep_until};

use crate::hub::Hub;

/// Gives the request's body until `header_read_timeout` from now (the
/// headers are in) to arrive.
pub async fn bound_body(State(hub): State<Hub>, request: Request) -> Request {
    if request.body().is_end_stream() {
        return request;
    }
    let deadline = Instant::now() + hub.config().header_read_timeout;
    request.map(|body| {
        Body::from_stream(Deadline {
            body: body.into_data_stream(),
            sleep: Box::pin(sleep_until(deadline)),
        })
    })
}

/// Whether reading a body failed because its deadline passed.
pub fn timed_out(error: &axum::Error) -> bool {
    let mut cause: Option<&dyn Error> = Some(error);
    while let Some(e) = cause {
        if e.is::<TimedOut>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A body that fails once `sleep` is over.
struct Deadline {
    body: BodyDataStream,
    sleep: Pin<Box<Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive in time")]
struct TimedOut;

impl Stream for Deadline {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(TimedOut.into())));
        }
        Pin::new(&mut self.body)
            .poll_next(cx)
            .map(|chunk| chunk.map(|c| c.map_err(Into::into)))
    }
}

//! Response bodies: whole (small answers) or streamed from a blocking reader through a bounded
//! channel, so that a file is never held whole in memory. A reader that fails sends an error,
//! and hyper then drops the connection: the client sees a short body, never wrong bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Frame;
use tokio::sync::mpsc;

/// Every response's body.
pub(super) type Body = BoxBody<Bytes, io::Error>;

/// A body of `bytes`.
pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(super) fn empty() -> Body {
    full(Bytes::new())
}

/// The receiving end of a streamed body.
struct Channel(mpsc::Receiver<io::Result<Bytes>>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

/// A streamed body and the sender a blocking thread feeds it through (`blocking_send`; an
/// error fails the response, a closed channel means the client went away).
pub(super) fn channel() -> (mpsc::Sender<io::Result<Bytes>>, Body) {
    let (tx, rx) = mpsc::channel(4);
    (tx, Channel(rx).boxed())
}

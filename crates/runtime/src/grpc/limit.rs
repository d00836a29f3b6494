//! Request size limits enforced in front of every service: each gRPC message's length prefix
//! is checked as it arrives, and an oversized message fails the call with
//! `RESOURCE_EXHAUSTED` before its body is buffered.
//!
//! This holds for every service on the server, whatever its generated server was told.
//! Generated servers also keep tonic's own decoding limit (4 MiB by default, answered with
//! `OUT_OF_RANGE`); a service configured above 4 MiB must raise that too, when it builds its
//! server: `LedgerServer::new(api).max_decoding_message_size(grpc.max_request_bytes())`.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tonic::Status;
use tower::{Layer, Service};

/// The length of a gRPC message header: a compression flag and a big-endian `u32` length.
const HEADER_LEN: usize = 5;

/// Wraps a service so that request messages above `max_bytes` are refused.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimitLayer {
    max_bytes: usize,
}

impl RequestLimitLayer {
    /// Refuses any request message longer than `max_bytes` (as sent, i.e. compressed).
    pub fn new(max_bytes: usize) -> Self {
        RequestLimitLayer { max_bytes }
    }
}

impl<S> Layer<S> for RequestLimitLayer {
    type Service = RequestLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimit {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// The service made by [`RequestLimitLayer`].
#[derive(Debug, Clone)]
pub struct RequestLimit<S> {
    inner: S,
    max_bytes: usize,
}

impl<S> Service<http::Request<tonic::body::Body>> for RequestLimit<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let max_bytes = self.max_bytes;
        let request = request.map(|body| tonic::body::Body::new(LimitedBody::new(body, max_bytes)));
        self.inner.call(request)
    }
}

/// Where the scanner is in the stream of length-prefixed messages.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// Collecting a message header; `filled` of its bytes seen so far.
    Header {
        bytes: [u8; HEADER_LEN],
        filled: usize,
    },
    /// Inside a message body; `remaining` bytes of it still to come.
    Message { remaining: u64 },
    /// A message was too long; the body has failed.
    Failed,
}

/// A request body that passes data through unchanged while reading the message headers in it.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    max_bytes: usize,
    scan: Scan,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`, failing once a message header announces more than `max_bytes`.
    pub fn new(inner: B, max_bytes: usize) -> Self {
        LimitedBody {
            inner,
            max_bytes,
            scan: Scan::Header {
                bytes: [0; HEADER_LEN],
                filled: 0,
            },
        }
    }

    /// Advances the scanner over one chunk of data.
    fn scan(&mut self, mut chunk: &[u8]) -> Result<(), Status> {
        while !chunk.is_empty() {
            match &mut self.scan {
                Scan::Header { bytes, filled } => {
                    let take = (HEADER_LEN - *filled).min(chunk.len());
                    bytes[*filled..*filled + take].copy_from_slice(&chunk[..take]);
                    *filled += take;
                    chunk = &chunk[take..];
                    if *filled == HEADER_LEN {
                        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        if len as u64 > self.max_bytes as u64 {
                            self.scan = Scan::Failed;
                            return Err(too_large(len, self.max_bytes));
                        }
                        self.scan = Scan::Message {
                            remaining: u64::from(len),
                        };
                        self.reset_if_message_done();
                    }
                }
                Scan::Message { remaining } => {
                    let take = (*remaining).min(chunk.len() as u64);
                    *remaining -= take;
                    chunk = &chunk[take as usize..];
                    self.reset_if_message_done();
                }
                Scan::Failed => return Err(Status::resource_exhausted("request too large")),
            }
        }
        Ok(())
    }

    fn reset_if_message_done(&mut self) {
        if let Scan::Message { remaining: 0 } = self.scan {
            self.scan = Scan::Header {
                bytes: [0; HEADER_LEN],
                filled: 0,
            };
        }
    }
}

fn too_large(len: u32, max_bytes: usize) -> Status {
    Status::resource_exhausted(format!(
        "request message of {len} bytes exceeds the limit of {max_bytes} bytes"
    ))
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes, Error = Status> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Scan::Failed = this.scan {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(status) = this.scan(data.chunk())
        {
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.scan, Scan::Failed) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    fn scan_in_chunks(max: usize, stream: &[u8], chunk: usize) -> Result<(), Status> {
        let mut body = LimitedBody::new((), max);
        stream.chunks(chunk).try_for_each(|c| body.scan(c))
    }

    #[test]
    fn messages_up_to_the_limit_pass_however_they_are_split() {
        let mut stream = message(10);
        stream.extend(message(0));
        stream.extend(message(16));
        for chunk in [1, 2, 3, 5, 7, 64] {
            scan_in_chunks(16, &stream, chunk).unwrap();
        }
    }

    #[test]
    fn a_message_over_the_limit_fails_with_resource_exhausted_at_its_header() {
        let mut stream = message(4);
        stream.extend(&message(17)[..HEADER_LEN]);
        for chunk in [1, 4, 64] {
            let err = scan_in_chunks(16, &stream, chunk).unwrap_err();
            assert_eq!(err.code(), tonic::Code::ResourceExhausted);
            assert!(err.message().contains("17 bytes"), "{}", err.message());
        }
    }
}

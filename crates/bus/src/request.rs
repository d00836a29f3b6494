//! Request/reply over core NATS (no JetStream): [`Bus::request`] with a timeout and typed
//! timeout and no-responders errors, and [`Bus::serve`], which answers requests on a subject
//! with an async handler. Requests carry the trace context; handlers run in a span whose parent
//! is the requester's.

use std::future::Future;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{HeaderMap, Message};
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::bus::Bus;
use crate::error::BusError;
use crate::trace;

/// A request as a [`Bus::serve`] handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The subject it was sent on.
    pub subject: String,
    /// Its payload.
    pub payload: Bytes,
    /// Its headers.
    pub headers: HeaderMap,
    /// The requester's trace context.
    pub trace_context: opentelemetry::Context,
}

/// A running responder. Dropping it (or calling [`stop`](Self::stop)) stops answering.
#[derive(Debug)]
pub struct Responder {
    subject: String,
    task: Option<JoinHandle<()>>,
}

impl Responder {
    /// The subject it answers on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Stops answering and waits for the task to end.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The only error is the cancellation just asked for.
            let _ = task.await;
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Bus {
    /// Sends a request and waits up to `timeout` for the first reply. Fails with
    /// [`BusError::NoResponders`] at once if nobody listens on `subject`, and with
    /// [`BusError::RequestTimeout`] if nobody answers in time.
    pub async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        mut headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Message, BusError> {
        trace::inject_current_if_absent(&mut headers);
        let request = async_nats::Request::new()
            .payload(payload)
            .headers(headers)
            .timeout(Some(timeout));
        self.client()
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|err| match err.kind() {
                RequestErrorKind::TimedOut => BusError::RequestTimeout {
                    subject: subject.to_owned(),
                    timeout,
                },
                RequestErrorKind::NoResponders => BusError::NoResponders {
                    subject: subject.to_owned(),
                },
                _ => BusError::Request {
                    subject: subject.to_owned(),
                    reason: err.to_string(),
                },
            })
    }

    /// Answers requests on `subject` (which may hold wildcards) with `handler`'s reply, one
    /// request at a time, until the returned [`Responder`] is dropped. With a `queue_group`,
    /// replicas of a service share the requests instead of each answering all of them.
    ///
    /// The subscription is registered with the server before this returns, so a request sent
    /// right after does not fail with no responders. Messages without a reply subject are
    /// ignored.
    pub async fn serve<F, Fut>(
        &self,
        subject: &str,
        queue_group: Option<&str>,
        handler: F,
    ) -> Result<Responder, BusError>
    where
        F: Fn(Request) -> Fut + Send + 'static,
        Fut: Future<Output = Bytes> + Send + 'static,
    {
        let subscribe_error = |reason: String| BusError::Subscribe {
            subject: subject.to_owned(),
            reason,
        };
        let client = self.client().clone();
        let mut subscriber = match queue_group {
            Some(group) => client
                .queue_subscribe(subject.to_owned(), group.to_owned())
                .await
                .map_err(|err| subscribe_error(err.to_string()))?,
            None => client
                .subscribe(subject.to_owned())
                .await
                .map_err(|err| subscribe_error(err.to_string()))?,
        };
        client
            .flush()
            .await
            .map_err(|err| subscribe_error(format!("flush failed: {err}")))?;

        let served = subject.to_owned();
        let task = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let Some(reply_to) = message.reply.clone() else {
                    continue;
                };
                let headers = message.headers.clone().unwrap_or_default();
                let request = Request {
                    subject: message.subject.to_string(),
                    payload: message.payload.clone(),
                    trace_context: trace::extract(&headers),
                    headers,
                };
                let span = tracing::info_span!("bus.serve", subject = %request.subject);
                // Fails only when no OpenTelemetry layer is installed; then there is no trace
                // to join anyway.
                let _ = span.set_parent(request.trace_context.clone());
                let reply = handler(request).instrument(span.clone()).await;
                let mut reply_headers = HeaderMap::new();
                span.in_scope(|| trace::inject_current(&mut reply_headers));
                if let Err(err) = client
                    .publish_with_headers(reply_to, reply_headers, reply)
                    .await
                {
                    tracing::warn!(subject = %served, error = %err, "reply not sent");
                }
            }
        });
        Ok(Responder {
            subject: subject.to_owned(),
            task: Some(task),
        })
    }
}

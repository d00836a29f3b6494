//! One shutdown signal for the whole process: SIGTERM or Ctrl-C, or a programmatic trigger
//! (tests, `citychain dev` stopping its children). Every server and background loop holds a
//! clone and stops when it fires.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// A cloneable shutdown handle. All clones see the same signal; triggering any of them
/// triggers all. A [`Shutdown::child`] also fires with its parent but can fire alone.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle that fires only when [`Shutdown::trigger`] is called.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// A handle that also fires on SIGTERM or SIGINT (Ctrl-C). Must be called inside a
    /// Tokio runtime; the handlers are in place when it returns.
    pub fn on_signals() -> std::io::Result<Self> {
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals()?;
        Ok(shutdown)
    }

    /// Makes this handle fire on SIGTERM or SIGINT (Ctrl-C) as well. The handlers are
    /// registered before it returns, so a signal arriving right after is not lost; the
    /// spawned waiter ends when the handle fires, whatever fired it. Must be called inside
    /// a Tokio runtime.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        let signals = Signals::register()?;
        let token = self.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                name = signals.recv() => {
                    tracing::info!(signal = name, "shutting down");
                    token.cancel();
                }
            }
        });
        Ok(())
    }

    /// Fires the signal; idempotent.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the signal has fired (at once if it already has). The future owns a
    /// handle, so it can be handed to a server as its shutdown future.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// A handle that fires when this one does, and can also be fired on its own without
    /// affecting this one (to stop one component early).
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
        }
    }

    /// The underlying token, for code that speaks `tokio_util`.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

impl From<CancellationToken> for Shutdown {
    fn from(token: CancellationToken) -> Self {
        Shutdown { token }
    }
}

/// The process signals that ask for a graceful stop, registered with Tokio.
#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first signal and names it.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn recv(self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            // Without a handler the process can only be stopped some other way.
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_clone_and_child() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        let child = shutdown.child();
        assert!(!clone.is_triggered());
        shutdown.trigger();
        clone.wait().await;
        child.wait().await;
        assert!(child.is_triggered());
    }

    #[tokio::test]
    async fn a_child_fires_alone_without_its_parent() {
        let parent = Shutdown::new();
        let child = parent.child();
        child.trigger();
        assert!(child.is_triggered());
        assert!(!parent.is_triggered());
    }
}

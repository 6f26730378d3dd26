//! Graceful stop. Terraform's `StopProvider` (sent when the user presses Ctrl-C), SIGINT
//! and SIGTERM ask every operation in flight to put traffic on a safe split, record where it
//! stopped, and return.
//!
//! tf-provider answers `StopProvider` itself and tells resource code nothing (see
//! `design/stack.md`); but it serves gRPC through tower-http's `TraceLayer`, which opens a
//! `tracing` span carrying the request URI for every call. [`install_stop_provider_hook`]
//! installs a tiny `tracing` subscriber that watches for the `StopProvider` URI and nothing
//! else, so no fork of tf-provider is needed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

/// A stop signal shared by everything that should stop together. A child ([`Stop::child`])
/// stops with its parent and can be stopped alone: one release whose lease was lost stops,
/// the others in the process go on.
#[derive(Clone, Debug)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<String>>>,
    parent: Option<Box<Stop>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// A signal of its own (tests; the provider uses [`global`]).
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
            parent: None,
        }
    }

    /// A signal that is requested when this one is, and can be requested alone.
    pub fn child(&self) -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
            parent: Some(Box::new(self.clone())),
        }
    }

    /// Asks operations to stop; the first reason given wins.
    pub fn request(&self, why: &str) {
        self.tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(why.to_string());
                true
            } else {
                false
            }
        });
    }

    /// Why a stop was requested (of this signal or a parent's), if it was.
    pub fn requested(&self) -> Option<String> {
        self.tx
            .borrow()
            .clone()
            .or_else(|| self.parent.as_ref().and_then(|p| p.requested()))
    }

    /// Resolves once a stop is requested, of this signal or a parent's (at once if it
    /// already was).
    pub fn wait(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
        Box::pin(async move {
            let own = async {
                let mut rx = self.tx.subscribe();
                loop {
                    if let Some(why) = rx.borrow_and_update().clone() {
                        return why;
                    }
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            match &self.parent {
                None => own.await,
                Some(parent) => tokio::select! {
                    why = own => why,
                    why = parent.wait() => why,
                },
            }
        })
    }
}

/// The provider process's stop signal.
pub fn global() -> &'static Stop {
    static STOP: OnceLock<Stop> = OnceLock::new();
    STOP.get_or_init(Stop::new)
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts an apply-time operation in flight for as long as it lives.
pub struct Busy(());

impl Busy {
    /// Marks an operation in flight.
    pub fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What Terraform's Ctrl-C looks like to the operations it stops.
pub const STOP_PROVIDER: &str = "Terraform asked the provider to stop (Ctrl-C)";

/// Installs the `tracing` subscriber that turns tf-provider's `StopProvider` call into a
/// [`global`] stop. Skipped when `PLUGIN_LOG_FILE` is set: tf-provider then installs its own
/// subscriber (and SIGINT still stops operations).
pub fn install_stop_provider_hook() {
    if std::env::var_os("PLUGIN_LOG_FILE").is_some() {
        return;
    }
    let _ = tracing::dispatcher::set_global_default(tracing::Dispatch::new(StopProviderWatch));
}

/// Handles SIGINT (a terminal's Ctrl-C reaches the whole process group, Terraform and its
/// providers; go-plugin providers ignore it, so must we) and SIGTERM: both stop operations;
/// SIGTERM also ends the process once nothing is in flight (at most 60 s later).
pub fn spawn_signal_handlers(runtime: &tokio::runtime::Runtime) {
    use tokio::signal::unix::{signal, SignalKind};
    runtime.spawn(async {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {
                    crate::log::warn("SIGINT: stopping operations in flight");
                    global().request("the provider received SIGINT (Ctrl-C)");
                }
                _ = term.recv() => {
                    crate::log::warn("SIGTERM: stopping operations in flight, then exiting");
                    global().request("the provider received SIGTERM");
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                    while IN_FLIGHT.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    // Let the last answer reach Terraform.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    std::process::exit(143);
                }
            }
        }
    });
}

struct StopProviderWatch;

struct UriVisitor;

impl tracing::field::Visit for UriVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "uri" && format!("{value:?}").ends_with("/StopProvider") {
            global().request(STOP_PROVIDER);
        }
    }
}

fn is_request_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.fields().field("uri").is_some()
}

impl tracing::Subscriber for StopProviderWatch {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if is_request_span(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        is_request_span(meta)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut UriVisitor);
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_waiters_wake() {
        let stop = Stop::new();
        assert_eq!(stop.requested(), None);
        let s2 = stop.clone();
        let waiter = tokio::spawn(async move { s2.wait().await });
        stop.request("one");
        stop.request("two");
        assert_eq!(waiter.await.unwrap(), "one");
        assert_eq!(stop.requested().as_deref(), Some("one"));
        assert_eq!(stop.wait().await, "one");
    }
}

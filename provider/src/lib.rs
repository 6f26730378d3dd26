//! terraform-provider-immutable: immutable releases on AWS.
//!
//! A map of the crate, from the outside in:
//!
//! - [`terraform`] — the Terraform layer, the only code that names tf-provider types:
//!   schemas, HCL values ↔ domain spec, validation with attribute paths, diagnostics.
//! - [`engine`] — runs releases, rollbacks, scaling and destroys: observe → decide → act,
//!   with progress written to AWS after every step.
//! - [`decide`] — the pure decision core (health gate arithmetic, traffic steps and splits,
//!   plan classification, poll back-off). No I/O, no clock.
//! - [`cloud`] — one trait per concern (fleets, traffic, images, alarms, ledger) in domain
//!   types; [`cloud::aws`] is the only code that names AWS SDK types, [`cloud::fake`] an
//!   in-memory cloud for tests.
//! - [`spec`], [`ledger`], [`duration`] — the domain types: what the user asked for, what
//!   a release records about itself in AWS, Go-style durations.
//! - [`naming`] — names of the objects a release owns and how its own are recognised.
//! - [`log`] — hclog-JSON lines on stderr for `TF_LOG`.
//! - [`lease`] — one apply at a time per release: a lease held in AWS, with an expiry.
//! - [`stop`] — graceful stop: `StopProvider`, SIGINT and SIGTERM reach operations in flight.

pub mod analysis;
pub mod capacity;
pub mod cloud;
pub mod decide;
pub mod duration;
pub mod engine;
pub mod lease;
pub mod ledger;
pub mod log;
pub mod naming;
pub mod notify;
pub mod route;
pub mod spec;
pub mod steps;
pub mod stop;
pub mod terraform;

/// Process start-up hygiene, to be called first thing in `main`, before any thread exists:
/// no backtraces in error messages (Terraform 1.0.3 reads them as a crash), and one rustls
/// crypto provider for the whole process.
pub fn init_process() {
    // SAFETY-free in edition 2021; called before the runtime starts any thread.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    std::env::set_var("RUST_BACKTRACE", "0");
    let _ = rustls::crypto::ring::default_provider().install_default();
}

//! mcw keeps an mcrouter config in step with DNS.
//!
//! Layout (where each behaviour lives):
//! - [`cli`]: command-line types, each option with its `MCW_*` twin; parsing of single values.
//! - [`settings`]: flag values → checked settings (bounds, order, the output directory,
//!   mcrouter's vetted command and routing prefix, what `--validate` runs); usage errors.
//! - [`error`]: the crate's error type; the one place exit codes are decided.
//! - [`template`]: JSONC parsing, token grammar, the one walk over `servers` arrays,
//!   rendering (pure).
//! - [`resolve`]: DNS lookups via hickory; canonical order of answers (pure); the
//!   `--allow-empty` policy.
//! - [`prefix`]: mcrouter routing-prefix rules (pure).
//! - [`engine`]: the long-running core as a state machine without I/O — events in (lookup
//!   results, template text, write outcomes, validator verdicts, mcrouter's answers, ticks with
//!   `now`), actions out (look up, read, write, validate, ask, start the child, give up,
//!   report). Refresh schedule, last good answers, confirmation, rollback, startup deadline.
//! - [`run`]: the event loop of `watch` and `run`: performs the engine's actions, owns the
//!   child, the validator process, signals, and the log lines of the engine's reports.
//! - [`output`]: atomic write-if-changed of the rendered file, candidates, leftovers (the only
//!   writer).
//! - [`watch`]: notify watch of the template's directories (inotify, or polling).
//! - [`supervise`]: mcrouter's lifecycle ([`supervise::Child`]), argument vetting, the signal
//!   table and stream, the only `waitpid`.
//! - [`confirm`]: one question to mcrouter about the config it runs; what counts as a digest.
//! - [`placement`]: mcrouter's hash functions (Ch3, Rendezvous) and the share of keys a
//!   change of a pool remaps (pure).
//! - [`http`]: the `--metrics-listen` endpoint (`/metrics`, `/healthz`, `/readyz`,
//!   `/status`), answered from the event loop's state.
//! - [`metrics`]: mcw's Prometheus families, process figures, and mcrouter's own stats under
//!   the standalone exporter's names.
//! - [`app`]: the one-shot commands `render`, `check` and `diff`.

pub mod app;
pub mod cli;

pub mod engine;
pub mod error;
pub mod fsx;
pub mod http;
pub mod mcrouter;
pub mod metrics;
pub mod output;
pub mod placement;
pub mod prefix;
pub mod resolve;
pub mod service;
pub mod settings;
pub mod supervise;
pub mod template;
pub mod template_watch;

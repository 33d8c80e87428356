//! mcw keeps an mcrouter config in step with DNS.
//!
//! Layout:
//! - [`cli`]: command-line types, each option with its `MCW_*` twin; flag parsing.
//! - [`template`]: JSONC parsing, token grammar, rendering (pure).
//! - [`resolve`]: DNS lookups via hickory; canonical order of answers (ordering is pure).
//! - [`output`]: atomic write-if-changed of the rendered file (the only writer).
//! - [`prefix`]: mcrouter routing-prefix rules (pure).
//! - [`app`]: the one-shot commands `render` and `check`.
//! - [`engine`]: long-running render state: last good answers, refresh schedule, publishing.
//! - [`watch`]: inotify watch of the template's directories.
//! - [`supervise`]: mcrouter's lifecycle, signal table, argument vetting; the only `waitpid`.
//! - [`confirm`]: asking mcrouter which config it runs (md5 of the active config).
//! - [`run`]: the event loop of `watch` and `run` (signals, timers, lookups, template changes,
//!   the child).

pub mod app;
pub mod cli;
pub mod confirm;
pub mod engine;
pub mod output;
pub mod prefix;
pub mod resolve;
pub mod run;
pub mod supervise;
pub mod template;
pub mod watch;

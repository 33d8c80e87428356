//! mcw keeps an mcrouter config in step with DNS.
//!
//! Layout, from the top of the module graph down (a module imports only modules below it):
//! - [`app`]: the commands, one file each: `render`, `check`, `diff`, `watch`, `run`.
//! - [`service`]: the event loop of `watch` and `run`: the `select!`, performing the engine's
//!   actions, lookups shared across pairs, mcrouter's side (signals, reaping), the validator,
//!   answers to HTTP, reports as log lines.
//! - [`settings`]: flag values → checked settings (bounds, order, the output directory,
//!   mcrouter's vetted command and routing prefix, what `--validate` runs, the engine's
//!   settings); usage errors.
//! - [`cli`]: command-line types, each option with its `MCW_*` twin; parsing of single values.
//! - [`error`]: the crate's error type; the one place exit codes are decided.
//! - [`logging`]: log lines (mcw's and mcrouter's) to stderr from a thread of their own,
//!   never blocking the loop.
//! - [`http`]: the `--metrics-listen` endpoint (`/metrics`, `/healthz`, `/readyz`,
//!   `/status`), answered from the event loop's state.
//! - [`metrics`]: mcw's Prometheus families, process figures, and mcrouter's own stats under
//!   the standalone exporter's names.
//! - [`mcrouter`]: talking to mcrouter on its admin port: the md5 it runs and its failed
//!   reloads, its stats.
//! - [`memcached`]: whether memcached servers answer (before a warm-up).
//! - [`engine`]: the long-running core as a state machine without I/O — events in (lookup
//!   results, template text, write outcomes, validator verdicts, mcrouter's answers, ticks with
//!   `now`), actions out (look up, read, write, validate, ask, start the child, give up,
//!   report).
//! - [`output`]: atomic write-if-changed of the rendered file against the disk, candidates,
//!   leftovers (the only writer).
//! - [`warmup`]: `--warm-up`: which slots of a changed pool are warmed, and the configs of the
//!   phases, built from mcrouter's own routes (pure).
//! - [`template_watch`]: the notify watch of the template's directories (inotify, or polling).
//! - [`supervise`]: mcrouter's lifecycle ([`supervise::Child`]), argument vetting, the signal
//!   table and stream, the only `waitpid`.
//! - [`template`]: JSON5 → strict JSON, token grammar, the one walk over `servers` arrays,
//!   rendering, pools and their hashing, Rendezvous tags (pure).
//! - [`resolve`]: DNS lookups via hickory (search list, CNAME chains, SRV targets): the only
//!   module that talks to DNS servers.
//! - [`dns`]: the DNS vocabulary, pure: the question, the answer in canonical order, the
//!   failures, `--allow-empty`.
//! - [`placement`]: mcrouter's hash functions (Ch3, Rendezvous) and the share of keys a
//!   change of a pool remaps (pure).
//! - [`prefix`]: mcrouter routing-prefix rules (pure).
//! - [`fsx`]: file helpers several modules share (bounded regular-file reads, parent
//!   directory).

pub mod app;
pub mod cli;
pub mod dns;
pub mod engine;
pub mod error;
pub mod fsx;
pub mod http;
pub mod logging;
pub mod mcrouter;
pub mod memcached;
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
pub mod warmup;

//! The HTTP endpoint of `--metrics-listen`: `/metrics`, `/healthz`, `/readyz`, `/status`.
//!
//! Owns the listener, HTTP/1.1 (hyper), routing, status codes and content negotiation. Every
//! answer about mcw comes from the event loop itself, over a channel ([`Ask`]), so `/healthz`
//! fails when the loop is wedged instead of being answered by a side task that outlives it.
//! What takes time — mcrouter's stats, the readiness probe of its admin port — happens here,
//! outside the loop, with short timeouts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::mcrouter::{admin, stats};
use crate::metrics::{self, exporter};

/// How long the loop may take to answer; longer means it is wedged.
const LOOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/readyz` waits for mcrouter's admin port (inside a kubelet's default 1 s).
const READY_TIMEOUT: Duration = Duration::from_millis(500);
/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once. Beyond it new ones are closed at once: a flood of idle clients
/// must not use up the file descriptors mcw needs to read the template and write the config.
const MAX_CONNECTIONS: usize = 128;
/// A connection is closed after this long whatever it does (a client that never reads its
/// answer holds one); Prometheus and probes simply reconnect.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// A question for the event loop; it answers on the enclosed channel.
#[derive(Debug)]
pub enum Ask {
    Health(oneshot::Sender<()>),
    Ready(oneshot::Sender<Readiness>),
    /// mcw's own families, as OpenMetrics text without `# EOF`.
    Metrics(oneshot::Sender<String>),
    /// `/status` as JSON.
    Status(oneshot::Sender<String>),
}

/// The loop's view of readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
    /// Ready if mcrouter answers on its admin port now.
    IfAnswers(SocketAddr),
}

/// Bind `addr` now, so a taken port is a startup error, before mcrouter is started.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

struct Context {
    loop_tx: mpsc::Sender<Ask>,
    /// mcrouter's admin address (`run` mode with a port): its stats join `/metrics`.
    admin: Option<SocketAddr>,
}

/// Serve requests on `listener` until the runtime ends.
pub fn serve(listener: TcpListener, loop_tx: mpsc::Sender<Ask>, admin: Option<SocketAddr>) {
    let ctx = Arc::new(Context { loop_tx, admin });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: do not spin on it.
                    tracing::warn!(reason = %e, "cannot accept a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(
                    limit = MAX_CONNECTIONS,
                    "too many metrics connections; closing a new one"
                );
                continue; // dropping the stream closes it
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(respond(&ctx, &req).await) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(64 * 1024)
                    .serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                    Ok(Err(e)) => tracing::debug!(reason = %e, "metrics connection ended"),
                    Err(_) => tracing::debug!("metrics connection reached its lifetime; closed"),
                    Ok(Ok(())) => {}
                }
            });
        }
    });
}

const PATHS: [&str; 4] = ["/metrics", "/healthz", "/readyz", "/status"];

async fn respond(ctx: &Context, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !PATHS.contains(&path) {
        return text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz, /readyz or /status\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" => match ask(ctx, Ask::Health).await {
            Some(()) => text(StatusCode::OK, "ok\n"),
            None => wedged(),
        },
        "/readyz" => ready(ctx).await,
        "/status" => match ask(ctx, Ask::Status).await {
            Some(json) => body(StatusCode::OK, "application/json", json),
            None => wedged(),
        },
        _ => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            scrape(ctx, metrics::wants_openmetrics(accept)).await
        }
    }
}

async fn ready(ctx: &Context) -> Response<Full<Bytes>> {
    let not_ready = |why: String| text(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}\n"));
    match ask(ctx, Ask::Ready).await {
        None => wedged(),
        Some(Readiness::Ready) => text(StatusCode::OK, "ready\n"),
        Some(Readiness::NotReady(why)) => not_ready(why),
        Some(Readiness::IfAnswers(addr)) => match admin::answers(addr, READY_TIMEOUT).await {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => not_ready(format!(
                "mcrouter does not answer on its admin port {addr}: {why}"
            )),
        },
    }
}

async fn scrape(ctx: &Context, openmetrics: bool) -> Response<Full<Bytes>> {
    // mcrouter's stats are fetched while the loop answers; neither waits for the other.
    let stats = async {
        match ctx.admin {
            Some(addr) => Some(stats::fetch(addr).await),
            None => None,
        }
    };
    let (own, stats, readiness) = tokio::join!(ask(ctx, Ask::Metrics), stats, ask(ctx, Ask::Ready));
    let (Some(mut exposition), Some(readiness)) = (own, readiness) else {
        return wedged();
    };
    // mcrouter answering its stats is the admin-port check /readyz makes.
    let answered = stats.as_ref().is_some_and(Result::is_ok);
    exposition.push_str(&metrics::ready(match readiness {
        Readiness::Ready => true,
        Readiness::NotReady(_) => false,
        Readiness::IfAnswers(_) => answered,
    }));
    if let Some(stats) = stats {
        let stats = stats
            .inspect_err(|why| tracing::debug!(reason = %why, "no stats from mcrouter"))
            .ok();
        exposition.push_str(&exporter::encode(stats));
    }
    exposition.push_str(&metrics::eof());
    if openmetrics {
        body(StatusCode::OK, metrics::OPENMETRICS, exposition)
    } else {
        body(
            StatusCode::OK,
            metrics::CLASSIC,
            metrics::classic(&exposition),
        )
    }
}

/// Ask the loop; `None` if it does not answer within [`LOOP_TIMEOUT`].
async fn ask<T>(ctx: &Context, make: impl FnOnce(oneshot::Sender<T>) -> Ask) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    tokio::time::timeout(LOOP_TIMEOUT, async {
        ctx.loop_tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    })
    .await
    .ok()
    .flatten()
}

fn wedged() -> Response<Full<Bytes>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("mcw's event loop did not answer within {LOOP_TIMEOUT:?}\n"),
    )
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    body(status, "text/plain; charset=utf-8", message.to_string())
}

fn body(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// What `/status` says of mcrouter's process in `run` mode.
pub struct Supervised<'a> {
    pub child: &'a crate::supervise::Child,
    /// Restarts so far, and the last one's reason.
    pub restarts: u64,
    pub last_restart: Option<&'static str>,
    /// During a backoff: how long until the next start.
    pub restart_in: Option<Duration>,
    /// The port mcw holds for mcrouter, if it does.
    pub held: Option<SocketAddr>,
}

/// `/status`: per token its query, last answer, age, error and whether the last good answer
/// stands in; per pool its servers; the md5 written and the md5 mcrouter runs; the last
/// reload; a warm-up; in `run` mode mcrouter's process. With one pair those are top-level
/// fields; with several (`watch`), `configs` lists one such object per pair, in the order
/// given.
pub fn status_json(pairs: &[crate::engine::PairStatus], supervised: Option<Supervised>) -> String {
    let mut out = match pairs {
        [one] => pair_json(one),
        several => {
            serde_json::json!({ "configs": several.iter().map(pair_json).collect::<Vec<_>>() })
        }
    };
    if let (Some(sup), Some(first)) = (supervised, pairs.first()) {
        let child = sup.child;
        let status = &first.status;
        let running = status.running.as_ref();
        let (running_md5, error) = match running.map(|o| &o.running) {
            Some(Ok(md5)) => (Some(md5.clone()), None),
            Some(Err(why)) => (None, Some(why.clone())),
            None => (None, None),
        };
        out["mcrouter"] = serde_json::json!({
            "pid": child.pid(),
            "state": child.state(),
            "running_md5": running_md5,
            "error": error,
            "config_failures": running.and_then(|o| o.failures),
            "last_failure": status.last_failure,
            "reload": status.reload,
            "confirmed": status.confirmed,
            "in_sync": status.in_sync,
            "restarts": sup.restarts,
            "last_restart_reason": sup.last_restart,
            "seconds_to_restart": sup.restart_in.map(|d| d.as_secs_f64()),
            "held_port": sup.held.map(|a| a.to_string()),
            "retrying_write": status.retrying,
        });
    }
    let mut text = serde_json::to_string_pretty(&out).unwrap_or_default();
    text.push('\n');
    text
}

fn pair_json(pair: &crate::engine::PairStatus) -> serde_json::Value {
    use serde_json::json;
    let status = &pair.status;
    let secs = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0);
    let tokens: Vec<_> = status
        .tokens
        .iter()
        .map(|t| {
            json!({
                "token": t.token,
                "query": t.query,
                "servers": t.servers,
                "ttl_seconds": t.ttl,
                "age_seconds": secs(t.age),
                "error": t.error,
                "last_good_in_use": t.last_good_in_use,
                "held": t.held,
            })
        })
        .collect();
    json!({
        "template": pair.template.display().to_string(),
        "output": pair.output.display().to_string(),
        "written_md5": status.written_md5,
        "seconds_since_render": secs(status.since_render),
        "seconds_since_write": secs(status.since_write),
        "tokens": tokens,
        "pools": status.pools,
        "last_reload_successful": status.last_reload_ok,
        "seconds_since_reload_success": secs(status.since_reload_success),
        "warm_up": status.warm_up.as_ref().map(|w| json!({
            "phase": w.phase,
            "seconds_left": secs(w.left),
            "pools": w.pools.iter().map(|p| json!({
                "pool": p.pool, "slots_of": p.side, "slots": p.slots,
            })).collect::<Vec<_>>(),
        })),
    })
}

//! `mcw watch`: the sidecar mode. Settings, then the event loop until SIGTERM/SIGINT.

use crate::cli::WatchArgs;
use crate::error::Error;
use crate::{service, settings};

/// `mcw watch`: keep the output current until SIGTERM/SIGINT (exit 0).
pub async fn watch(args: &WatchArgs) -> Result<u8, Error> {
    let service = settings::service(&args.service)?;
    // As a sidecar's PID 1, orphans (of `kubectl exec` sessions, say) land on mcw: reap them.
    service::serve(service, None).await
}

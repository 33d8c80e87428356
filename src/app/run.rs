//! `mcw run`: the supervisor mode. Settings (mcrouter's command vetted), what a supervisor
//! sets up before any child exists (the signal mask, the subreaper), then the event loop until
//! mcrouter exits.

use crate::cli::RunArgs;
use crate::error::Error;
use crate::supervise::{self, signals};
use crate::{service, settings};

/// `mcw run`: everything `watch` does, plus supervising the command after `--`.
pub async fn run(args: &RunArgs) -> Result<u8, Error> {
    let sup = settings::run(args)?;
    let service = settings::service(&args.service)?;
    settings::one_pair(&service)?;
    if sup.launch.mcrouter_at.is_none() {
        tracing::warn!(
            command = %args.command.join(" "),
            name = %args.mcrouter_name,
            "no word of the command is named mcrouter, so its arguments are not vetted (see --mcrouter-name)"
        );
    }
    if let Err(e) = signals::unblock_all() {
        tracing::warn!(reason = %e, "cannot clear the inherited signal mask; mcrouter inherits it");
    }
    let pid1 = std::process::id() == 1;
    if !pid1
        && sup.subreaper
        && let Err(e) = supervise::become_subreaper()
    {
        tracing::warn!(reason = %e, "cannot become a child subreaper; orphans of mcrouter's children will not be reaped by mcw");
    }
    if sup.admin.is_none() {
        tracing::warn!(
            "mcrouter has no -p/--port, so mcw cannot confirm that it reloads the configs it writes"
        );
    }
    service::serve(service, Some(sup)).await
}

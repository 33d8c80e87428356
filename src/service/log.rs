//! The engine's reports as log lines: one line per report, at the level an operator needs
//! (`info` for what they must see, `warn` for degraded-but-running, `error` before a failure
//! that matters), with the field names the README lists (`template`, `output`, `token`,
//! `pool`, `generation`, `reason`, `pid`, `signal`, `exit_code`, `md5`).

use std::path::Path;

use tokio::task::JoinError;

use crate::engine::Report;
use crate::error::Error;
use crate::placement::Share;

/// One log line for `report` about the config written from `template` to `output`. With
/// several pairs, `named` is the output, and every line names it (once).
pub(super) fn log(report: &Report, template: &Path, output: &Path, named: Option<&Path>) {
    let output = output.display();
    let template = template.display();
    let config = named.map(|p| tracing::field::display(p.display()));
    match report {
        Report::TemplateChanged { tokens } => {
            tracing::info!(output = config, %template, tokens, "template changed")
        }
        Report::TemplateRejected { reason } => {
            tracing::error!(output = config, %template, reason, "template edit rejected; keeping the last good config")
        }
        Report::TemplateUnreadable { reason } => {
            tracing::warn!(output = config, %template, reason, "cannot read the template; keeping the last good config")
        }
        Report::PrefixUnchecked { routes } => {
            tracing::debug!(output = config, %template, routes, "routing prefix matches no plain alias; some routes are macro calls and cannot be checked")
        }
        Report::LookupFailed {
            token,
            failure,
            kept: true,
        } => {
            tracing::warn!(output = config, token, reason = %failure, "DNS lookup failed; keeping the last good answer")
        }
        Report::LookupFailed { token, failure, .. } => {
            tracing::warn!(output = config, token, reason = %failure, "DNS lookup failed; nothing to write until it answers")
        }
        Report::DnsRecovered { token } => {
            tracing::info!(output = config, token, "DNS answers again")
        }
        Report::Holding {
            token,
            server,
            hold,
        } => tracing::info!(
            output = config,
            %token,
            %server,
            hold = ?hold,
            "server vanished from DNS; holding its slot (--hold-removed)"
        ),
        Report::HoldEnded {
            token,
            server,
            back: true,
        } => {
            tracing::info!(output = config, %token, %server, "held server is back in DNS; nothing changes")
        }
        Report::HoldEnded {
            token,
            server,
            back: false,
        } => {
            tracing::info!(output = config, %token, %server, "hold ran out; removing the server")
        }
        Report::Rendered { generation, md5 } => {
            tracing::debug!(output = config, generation, %md5, "rendered a new config")
        }
        // Logged with the share of keys it remapped, once that is measured: `pool_changed`.
        Report::PoolChanged { .. } => {}
        Report::Wrote {
            generation,
            md5,
            pools,
            servers,
            propagation,
        } => {
            let since_dns_change_ms = millis(*propagation);
            tracing::info!(%output, generation, %md5, pools, servers, since_dns_change_ms, "wrote config")
        }
        Report::RenderNote { note } => {
            tracing::warn!(output = config, %template, reason = %note, "rendered with a caveat")
        }
        Report::AlreadyOnDisk { md5 } => {
            tracing::info!(%output, %md5, "output already holds this config")
        }
        Report::WriteFailed { reason } => {
            tracing::error!(%output, reason, "cannot write the config; the old file is intact, retrying")
        }
        Report::SkippedRejected { md5 } => {
            tracing::debug!(output = config, %md5, "this render was rejected before; not writing it again")
        }
        Report::ValidatorRejected { generation, reason } => {
            tracing::error!(
                generation,
                reason,
                "mcrouter --validate-config rejected the new config; it was not installed"
            )
        }
        Report::Confirmed {
            md5,
            after,
            propagation,
        } => {
            let after_ms = after.as_millis() as u64;
            let since_dns_change_ms = millis(*propagation);
            tracing::info!(%md5, after_ms, since_dns_change_ms, "mcrouter runs the new config")
        }
        Report::RunsEarlier { md5 } => {
            tracing::debug!(%md5, "mcrouter runs an earlier config of mcw's")
        }
        Report::Rejected {
            md5,
            running,
            failures,
            restoring,
            reason,
        } => {
            tracing::error!(
                %md5,
                running_md5 = %running,
                config_failures = failures,
                restoring,
                reason = reason.as_deref().unwrap_or("see mcrouter's log"),
                "mcrouter rejected the config and still runs the previous one"
            )
        }
        Report::RejectedBecause { md5, reason } => {
            tracing::error!(%md5, reason, "mcrouter's reason for rejecting the config")
        }
        Report::Restored { md5 } => {
            tracing::info!(%md5, %output, "wrote the running config back to the output")
        }
        Report::NotReloadedYet { md5, running } => {
            tracing::warn!(%md5, running_md5 = %running, "mcrouter has not reloaded the new config yet and shows no failed reload; still asking")
        }
        Report::CannotTell { md5, reason } => {
            tracing::warn!(%md5, reason, "cannot tell whether mcrouter runs the new config; still asking")
        }
        Report::RunsDump { md5, running } => {
            tracing::error!(%md5, running_md5 = %running, "mcrouter could not load the config file at startup and serves a copy it dumped in an earlier run (configs_from_disk=1): not mcw's config; fix the template, or SIGHUP to try again")
        }
        Report::Repaired { md5 } => {
            tracing::warn!(%md5, %output, "the output on disk was not the config in force (deleted or replaced); wrote it again")
        }
        Report::Unsynced { md5, reason } => {
            tracing::warn!(%md5, %output, reason, "wrote the config (mcrouter sees it), but a power loss may take it back")
        }
        Report::StartDeferred { reason } => {
            tracing::error!(%output, reason, "cannot write the config mcrouter is to start on; not starting it, retrying")
        }
        Report::Reoffering { md5, why } => {
            tracing::warn!(%md5, reason = why, "writing the config again so that mcrouter surely tries it")
        }
        Report::Reoffered { md5 } => {
            tracing::info!(%md5, %output, "wrote the config again")
        }
        Report::WarmUpStarted {
            pools,
            skipped,
            bracket,
            duration,
        } => {
            let warmed = pools
                .iter()
                .map(|p| format!("{} ({} slots {:?})", p.pool, p.side, p.slots))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::info!(
                output = config,
                pools = %warmed,
                bracket = ?bracket,
                duration = ?duration,
                "warming up the change: first bracket, warm-up, last bracket, then the plain config"
            );
            for (pool, reason) in skipped {
                tracing::warn!(output = config, %pool, reason, "pool changed without a warm-up");
            }
        }
        Report::WarmUpPhase {
            phase,
            generation,
            md5,
            propagation,
        } => {
            let since_dns_change_ms = millis(*propagation);
            tracing::info!(%output, phase, generation, %md5, since_dns_change_ms, "wrote a warm-up phase's config")
        }
        Report::WarmUpTimer { phase, lasts } => {
            tracing::info!(output = config, phase, lasts = ?lasts, "warm-up phase runs")
        }
        Report::WarmUpSkipped { skipped } => {
            for (pool, reason) in skipped {
                tracing::warn!(output = config, %pool, reason, "pool changed without a warm-up");
            }
        }
        Report::WarmUpFinished { pools } => {
            tracing::info!(output = config, pools = %pools.join(" "), "warm-up over; writing the plain config")
        }
        Report::WarmUpAbandoned { reason } => {
            tracing::error!(
                output = config,
                reason,
                "warm-up abandoned; writing the plain config without one"
            )
        }
        Report::WarmUpDeferring { phase } => {
            tracing::info!(
                output = config,
                phase,
                "a change came during the warm-up; it waits for the warm-up to end"
            )
        }
    }
}

/// A pool's change, with the share of keys it sends to another server (measured off the loop
/// for a large Rendezvous pool, so it may come a little after the write it belongs to).
pub(super) struct Remapped {
    /// The pair whose config changed.
    pub(super) n: usize,
    pub(super) pool: String,
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
    pub(super) servers: usize,
    pub(super) gone: bool,
    /// The share of keys the change sends elsewhere, or why mcw cannot tell.
    pub(super) remapped: Result<Share, String>,
}

impl super::Loop {
    /// Measure the share of keys `change` remaps, on the loop when it is cheap, on a blocking
    /// thread when it is a large Rendezvous pool's; then log and export it.
    pub(super) fn measure(&mut self, done: Remapped, change: crate::placement::Change) {
        if change.scores() <= crate::placement::INLINE_SCORES {
            let remapped = change.remapped();
            self.pool_changed(Remapped { remapped, ..done });
        } else {
            // A large Rendezvous pool: a quarter of a second or more of hashing.
            self.remaps.spawn_blocking(move || Remapped {
                remapped: change.remapped(),
                ..done
            });
        }
    }

    /// A pool's change, with the share of keys it remapped: logged and exported.
    fn pool_changed(&mut self, done: Remapped) {
        let pair = &self.pairs[done.n].pair;
        self.metrics
            .remapped(&pair.output.path, &done.pool, done.gone, &done.remapped);
        pool_changed(&done, self.named(done.n));
    }

    pub(super) fn remap_measured(
        &mut self,
        done: Result<Remapped, JoinError>,
    ) -> Result<Option<u8>, Error> {
        match done {
            Ok(done) => self.pool_changed(done),
            Err(e) => {
                tracing::warn!(reason = %e, "measuring the share of keys a change remapped failed")
            }
        }
        Ok(None)
    }
}

/// The log line of a pool's change.
pub(super) fn pool_changed(done: &Remapped, named: Option<&Path>) {
    let config = named.map(|p| tracing::field::display(p.display()));
    let remapped = match &done.remapped {
        Ok(share) => share.to_string(),
        Err(why) => format!("unknown ({why})"),
    };
    let added = done
        .added
        .iter()
        .map(|s| format!("+{s}"))
        .collect::<Vec<_>>();
    let removed = done
        .removed
        .iter()
        .map(|s| format!("-{s}"))
        .collect::<Vec<_>>();
    let message = if done.gone {
        "pool removed"
    } else if added.is_empty() && removed.is_empty() {
        "pool servers reordered"
    } else {
        "pool servers changed"
    };
    tracing::info!(
        output = config,
        pool = %done.pool,
        added = %added.join(" "),
        removed = %removed.join(" "),
        servers = done.servers,
        %remapped,
        "{message}"
    );
}

/// A duration in whole milliseconds, for a log field that is left out when there is none.
fn millis(d: Option<std::time::Duration>) -> Option<u64> {
    d.map(|d| d.as_millis() as u64)
}

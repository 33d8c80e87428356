//! `mcw diff`: what a render now would change in the config on disk, pool by pool (servers
//! added, removed and moved, and the share of keys remapped), as text or JSON; writes nothing.
//! Exit 0: no change; 1: changes; 2: trouble, like `diff`.

use std::fmt::Write as _;
use std::io::Write as _;

use super::render_once;
use crate::cli::{DiffArgs, Format};
use crate::error::Error;
use crate::placement::{self, Pool};
use crate::template::pools::pools_of;
use crate::template::{Rendered, Template};
use crate::warmup::{self, Plan};

/// What `--warm-up` would make of the change from the config on disk (its pools `was`) to
/// `rendered`, probing the old servers as a warm-up would.
async fn warm_up_plan(
    on_disk: &[u8],
    was: &std::collections::BTreeMap<String, Pool>,
    rendered: &Rendered,
) -> Plan {
    let before = Rendered {
        bytes: on_disk.to_vec(),
        pools: was.clone(),
        notes: Vec::new(),
    };
    let alive = crate::memcached::answering(warmup::old_servers(&before, rendered)).await;
    warmup::plan(&before, rendered, &alive)
}

/// The warm-up of pool `label`, from `plan`.
fn warm_of(plan: &Plan, label: &str) -> Option<Result<(&'static str, Vec<usize>), String>> {
    if let Some(p) = plan.pools.iter().find(|p| p.pool == label) {
        return Some(match p.warmed() {
            slots if slots.is_empty() => {
                Err("none of its changed slots' old servers answered".into())
            }
            slots => Ok((p.side(), slots)),
        });
    }
    plan.skipped
        .iter()
        .find(|(pool, _)| pool == label)
        .map(|(_, why)| Err(why.clone()))
}

/// One pool's difference between the config on disk and a fresh render.
struct PoolDiff {
    label: String,
    before: Option<Pool>,
    after: Option<Pool>,
    /// What `--warm-up` would do: the slots it would warm (and whose), or why not.
    warm: Option<Result<(&'static str, Vec<usize>), String>>,
}

impl PoolDiff {
    fn remapped(&self) -> Result<placement::Share, String> {
        placement::remapped(self.before.as_ref(), self.after.as_ref())
    }

    fn hashing(&self) -> &str {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .map_or("unknown", |p| p.hashing.name())
    }

    fn to_json(&self) -> serde_json::Value {
        let (old, new) = (
            placement::servers_of(self.before.as_ref()),
            placement::servers_of(self.after.as_ref()),
        );
        let (added, removed) = placement::added_removed(old, new);
        let moved: Vec<_> = placement::moved(old, new)
            .into_iter()
            .map(|(server, from, to)| serde_json::json!({"server": server, "from": from, "to": to}))
            .collect();
        let (remapped, why) = match self.remapped() {
            Ok(share) => (serde_json::json!(share.ratio()), None),
            Err(why) => (serde_json::Value::Null, Some(why)),
        };
        serde_json::json!({
            "pool": self.label,
            "hash": self.hashing(),
            "servers_before": self.before.as_ref().map(|p| p.servers.len()),
            "servers_after": self.after.as_ref().map(|p| p.servers.len()),
            "added": added,
            "removed": removed,
            "moved": moved,
            "remapped": remapped,
            "remapped_unknown": why,
            "warm_up": match &self.warm {
                Some(Ok((side, slots))) => serde_json::json!({"slots_of": side, "slots": slots}),
                Some(Err(why)) => serde_json::json!({"skipped": why}),
                None => serde_json::Value::Null,
            },
        })
    }

    fn to_text(&self, out: &mut String) {
        let (old, new) = (
            placement::servers_of(self.before.as_ref()),
            placement::servers_of(self.after.as_ref()),
        );
        let remapped = match self.remapped() {
            Ok(share) => format!("{share} of keys remapped"),
            Err(why) => format!("keys remapped: unknown ({why})"),
        };
        let _ = writeln!(
            out,
            "pool {} ({}): {} -> {} servers, {remapped}",
            self.label,
            self.hashing(),
            old.len(),
            new.len()
        );
        let (added, removed) = placement::added_removed(old, new);
        for s in added {
            let _ = writeln!(out, "  + {s}");
        }
        for s in removed {
            let _ = writeln!(out, "  - {s}");
        }
        for (s, from, to) in placement::moved(old, new) {
            let _ = writeln!(out, "  ~ {s}  (slot {from} -> {to})");
        }
        match &self.warm {
            Some(Ok((side, slots))) => {
                let _ = writeln!(
                    out,
                    "  with --warm-up: {side} slots {slots:?} would be warmed"
                );
            }
            Some(Err(why)) => {
                let _ = writeln!(out, "  with --warm-up: not warmed ({why})");
            }
            None => {}
        }
    }
}

/// `mcw diff`: 0 when a fresh render equals the config on disk, 1 when it differs (the
/// difference printed), an error (exit 2) when either side cannot be had.
pub async fn diff(args: &DiffArgs) -> Result<u8, Error> {
    let path = args.template.path();
    let template = Template::load(path)?;
    let output = &args.output.path;
    let on_disk = std::fs::read(output).map_err(|source| Error::DiffInput {
        path: output.clone(),
        source,
        hint: "pass --output with the file mcw watch or mcw run writes",
    })?;
    let before: serde_json::Value =
        serde_json::from_slice(&on_disk).map_err(|e| Error::DiffInput {
            path: output.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            hint: "it is not a config mcw wrote",
        })?;
    let rendered = render_once(path, &template, &args.dns).await?;
    let differs = on_disk != rendered.bytes;

    // A config in a warm-up holds mcw's own pools beside the template's: they are not the
    // template's, and the warm-up's plain config is what the render is compared with.
    let mut was = pools_of(&before);
    let in_warm_up = was
        .keys()
        .any(|l| l.ends_with(warmup::routes::OLD_POOL_SUFFIX));
    was.retain(|l, _| !l.ends_with(warmup::routes::OLD_POOL_SUFFIX));
    let warm = warm_up_plan(&on_disk, &was, &rendered).await;
    let mut is = rendered.pools;
    let labels: std::collections::BTreeSet<String> = was.keys().chain(is.keys()).cloned().collect();
    let changed: Vec<PoolDiff> = labels
        .into_iter()
        .map(|label| PoolDiff {
            before: was.remove(&label),
            after: is.remove(&label),
            warm: warm_of(&warm, &label),
            label,
        })
        .filter(|d| d.before != d.after)
        .collect();
    let outside = differs && changed.is_empty();

    let text = match args.format {
        Format::Json => {
            let report = serde_json::json!({
                "output": output.display().to_string(),
                "template": path.display().to_string(),
                "changed": differs,
                "outside_pools": outside,
                "in_warm_up": in_warm_up,
                "pools": changed.iter().map(PoolDiff::to_json).collect::<Vec<_>>(),
            });
            format!("{report:#}\n")
        }
        Format::Text => {
            let mut out = String::new();
            for d in &changed {
                d.to_text(&mut out);
            }
            if in_warm_up {
                out.push_str("the config on disk is in a warm-up (mcw's own pools are left out)\n");
            }
            if outside {
                out.push_str("the config differs outside the pools' server lists\n");
            }
            if !differs {
                let _ = writeln!(
                    out,
                    "no change: {} is what the template renders to now",
                    output.display()
                );
            }
            out
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(Error::Stdout)?;
    Ok(u8::from(differs))
}

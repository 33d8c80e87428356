//! `mcw render`: one render, to `--output` (written only when the bytes differ) or stdout.

use std::io::Write as _;

use super::render_once;
use crate::cli::RenderArgs;
use crate::error::Error;
use crate::output::Written;
use crate::template::Template;

/// `mcw render`.
pub async fn render(args: &RenderArgs) -> Result<(), Error> {
    let path = args.template.path();
    let template = Template::load(path)?;
    let rendered = render_once(path, &template, &args.dns).await?;
    for note in &rendered.notes {
        tracing::warn!(template = %path.display(), reason = %note, "rendered with a caveat");
    }
    match &args.output {
        None => std::io::stdout()
            .lock()
            .write_all(&rendered.bytes)
            .map_err(Error::Stdout),
        Some(spec) => {
            let wrote = spec.write_if_changed(&rendered.bytes)?;
            if let Written::Unsynced(reason) = &wrote {
                tracing::warn!(output = %spec.path.display(), reason, "wrote the config, but a power loss may take it back");
            }
            let written = wrote != Written::Unchanged;
            let servers: usize = rendered.pools.values().map(|p| p.servers.len()).sum();
            tracing::info!(
                output = %spec.path.display(),
                written,
                pools = rendered.pools.len(),
                servers,
                "rendered config"
            );
            Ok(())
        }
    }
}

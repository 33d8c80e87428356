//! Config dumps, as mcrouter keeps them: the last config that loaded, saved under
//! `<config-dump-root>/mcrouter/<port>/file-<the config path, URL-encoded>`, and read back at
//! startup when the config file fails, if it is younger than `--max-dumped-config-age`.

use std::path::PathBuf;
use std::time::Duration;

/// Where one router's dump of one config file lives.
pub struct Dump {
    path: PathBuf,
}

impl Dump {
    /// The dump of `config` for the router on the first of `ports`; `None` when dumps are off
    /// (an empty root).
    pub fn new(root: &str, ports: &[u16], config: &str) -> Option<Dump> {
        if root.is_empty() {
            return None;
        }
        let encoded: String = config
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02x}"),
            })
            .collect();
        let port = ports.first()?;
        let path = PathBuf::from(root)
            .join("mcrouter")
            .join(port.to_string())
            .join(format!("file-{encoded}"));
        Some(Dump { path })
    }

    /// Keep `bytes` as the last good config.
    pub fn save(&self, bytes: &[u8]) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&self.path, bytes);
    }

    /// The dumped config, when there is one no older than `max_age` (zero: never).
    pub fn load(&self, max_age: Duration) -> Option<Vec<u8>> {
        let age = std::fs::metadata(&self.path)
            .ok()?
            .modified()
            .ok()?
            .elapsed()
            .ok()?;
        (!max_age.is_zero() && age <= max_age)
            .then(|| std::fs::read(&self.path).ok())
            .flatten()
    }
}

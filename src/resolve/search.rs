//! Which absolute names to try for a name written in a token, the way the system resolver
//! (glibc, musl) applies `/etc/resolv.conf`'s `search` list and `ndots`.
//!
//! Owns reading those two settings and expanding a name into candidates. Pure except for
//! [`SearchConfig::from_resolv_conf`], which reads the file.

use std::path::Path;

/// The parts of resolv.conf that decide how a relative name is expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchConfig {
    /// Search domains, each without a trailing dot.
    pub search: Vec<String>,
    pub ndots: usize,
    /// Name servers listed in the file (port 53).
    pub nameservers: Vec<std::net::IpAddr>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            search: Vec::new(),
            ndots: 1,
            nameservers: Vec::new(),
        }
    }
}

impl SearchConfig {
    /// Read `search`/`domain`, `options ndots:N` and `nameserver` lines. A missing file means
    /// the resolver defaults (no search list, ndots 1, no servers).
    pub fn from_resolv_conf(path: &Path) -> std::io::Result<SearchConfig> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let (conf, errors) = resolv_conf::Config::parse_with_errors(&bytes);
        for error in errors {
            tracing::debug!(path = %path.display(), %error, "ignoring a resolv.conf line");
        }
        let search = conf
            .get_last_search_or_domain()
            .filter(|d| *d != "--" && !d.is_empty())
            .map(|d| d.trim_end_matches('.').to_string())
            .collect();
        Ok(SearchConfig {
            search,
            ndots: conf.ndots as usize,
            nameservers: conf.nameservers.iter().map(|ns| ns.into()).collect(),
        })
    }

    /// Absolute names (ending in `.`) to try, in order. A name with a trailing dot is tried
    /// alone; one with at least `ndots` dots is tried as written first, then with each search
    /// domain; a shorter one gets the search domains first (so `memcache` inside a Kubernetes
    /// pod finds `memcache.<namespace>.svc.cluster.local`).
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if name.ends_with('.') {
            return vec![name.to_string()];
        }
        let as_is = format!("{name}.");
        let searched = self.search.iter().map(|d| format!("{name}.{d}."));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(as_is).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(as_is)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k8s() -> SearchConfig {
        SearchConfig {
            search: vec![
                "ns.svc.cluster.local".into(),
                "svc.cluster.local".into(),
                "cluster.local".into(),
            ],
            ndots: 5,
            nameservers: vec![],
        }
    }

    #[test]
    fn candidates_follow_ndots_and_search() {
        let conf = k8s();
        assert_eq!(
            conf.candidates("memcache"),
            [
                "memcache.ns.svc.cluster.local.",
                "memcache.svc.cluster.local.",
                "memcache.cluster.local.",
                "memcache."
            ]
        );
        assert_eq!(conf.candidates("mc.example.com."), ["mc.example.com."]);
        let plain = SearchConfig {
            search: vec!["corp".into()],
            ndots: 1,
            nameservers: vec![],
        };
        assert_eq!(
            plain.candidates("mc.example"),
            ["mc.example.", "mc.example.corp."]
        );
        assert_eq!(plain.candidates("mc"), ["mc.corp.", "mc."]);
    }

    #[test]
    fn reads_search_ndots_and_servers_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
        )
        .unwrap();
        let conf = SearchConfig::from_resolv_conf(&path).unwrap();
        assert_eq!(conf.search, k8s().search);
        assert_eq!(conf.ndots, 5);
        assert_eq!(
            conf.nameservers,
            vec!["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
        );
        let missing = SearchConfig::from_resolv_conf(&dir.path().join("nope")).unwrap();
        assert_eq!(missing, SearchConfig::default());
    }
}

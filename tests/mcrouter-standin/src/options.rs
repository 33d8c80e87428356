//! Command line, parsed the way mcrouter's getopt_long does: `--opt=v` or `--opt v`, unique
//! abbreviations of long options, `-pX`/`-p X`. Unknown options and bad values are logged and
//! ignored, never fatal; a positional argument would be a flavor file (logged, ignored here).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: Option<String>,
    /// `--config=file:PATH` (wins over -f) or `--config=<json>` / `--config-str` (inline).
    pub config_arg: Option<String>,
    pub config_str: Option<String>,
    pub ports: Vec<u16>,
    pub listen_addresses: Vec<String>,
    /// `--listen-sock-fd`: a listening socket to take over instead of binding ports (-1:
    /// none, mcrouter's default).
    pub listen_sock_fd: i32,
    pub route_prefix: String,
    pub validate: bool,
    pub reconfiguration_delay: Duration,
    pub disable_reload: bool,
    /// Where the last good config is dumped (empty: nowhere), and how old a dump may be to
    /// stand in for a config that fails at startup (zero: never).
    pub config_dump_root: String,
    pub max_dumped_config_age: Duration,
}

/// (name, takes a value)
const LONG: &[(&str, bool)] = &[
    ("config-file", true),
    ("config", true),
    ("config-str", true),
    ("port", true),
    ("listen-addresses", true),
    ("route-prefix", true),
    ("validate-config", false),
    ("reconfiguration-delay-ms", true),
    ("config-dump-root", true),
    ("stats-root", true),
    ("debug-fifo-root", true),
    ("async-dir", true),
    ("stats-logging-interval", true),
    ("max-dumped-config-age", true),
    ("config-params", true),
    ("reconfiguration-jitter-ms", true),
    ("num-proxies", true),
    ("disable-reload-configs", false),
    ("listen-sock-fd", true),
    ("tcp-listen-backlog", true),
];

pub fn log(msg: &str) {
    eprintln!("mcrouter-standin: {msg}");
}

/// mcrouter's normalisation: slashes added; exactly two non-empty parts, else None.
pub fn normalise_prefix(raw: &str) -> Option<String> {
    let mut p = raw.to_string();
    if !p.starts_with('/') {
        p.insert(0, '/');
    }
    if !p.ends_with('/') {
        p.push('/');
    }
    let inner = p.strip_prefix('/')?.strip_suffix('/')?;
    let parts: Vec<&str> = inner.split('/').collect();
    (parts.len() == 2 && parts.iter().all(|s| !s.is_empty())).then_some(p)
}

impl Options {
    pub fn parse(args: &[String]) -> Options {
        let mut o = Options {
            config_file: None,
            config_arg: None,
            config_str: None,
            ports: Vec::new(),
            listen_addresses: Vec::new(),
            listen_sock_fd: -1,
            route_prefix: "/././".into(),
            validate: false,
            reconfiguration_delay: Duration::from_millis(1000),
            disable_reload: false,
            config_dump_root: "/var/mcrouter/config".into(),
            max_dumped_config_age: Duration::from_secs(12 * 60 * 60),
        };
        let mut words = args.iter();
        while let Some(word) = words.next() {
            if let Some(long) = word.strip_prefix("--") {
                let (given, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let exact = LONG.iter().find(|(n, _)| *n == given);
                let prefixed: Vec<_> = LONG.iter().filter(|(n, _)| n.starts_with(given)).collect();
                let unique = match prefixed.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                };
                let Some(&(name, takes)) = exact.or(unique) else {
                    log(&format!("unknown or ambiguous option {word}, ignored"));
                    continue;
                };
                let value = match (takes, inline) {
                    (_, Some(v)) => Some(v),
                    (true, None) => words.next().cloned(),
                    (false, None) => None,
                };
                o.set(name, value);
            } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
                let (flag, rest) = short.split_at(1);
                let value = if rest.is_empty() {
                    words.next().cloned()
                } else {
                    Some(rest.to_string())
                };
                match flag {
                    "p" => o.set("port", value),
                    "f" => o.set("config-file", value),
                    "R" => o.set("route-prefix", value),
                    _ => log(&format!("unknown option {word}, ignored")),
                }
            } else {
                log(&format!(
                    "flavor file {word} ignored (the stand-in has no flavors)"
                ));
            }
        }
        o
    }

    fn set(&mut self, name: &str, value: Option<String>) {
        let v = value.unwrap_or_default();
        match name {
            "config-file" => self.config_file = Some(v),
            "config" => self.config_arg = Some(v),
            "config-str" => self.config_str = Some(v),
            "port" => {
                for p in v.split(',') {
                    match p.trim().parse() {
                        Ok(port) => self.ports.push(port),
                        Err(_) => log(&format!("bad port {p:?}, ignored")),
                    }
                }
            }
            "listen-addresses" => self
                .listen_addresses
                .extend(v.split(',').map(|s| s.trim().to_string())),
            "route-prefix" => match normalise_prefix(&v) {
                Some(p) => self.route_prefix = p,
                None => log(&format!("invalid route prefix {v:?}, using /././")),
            },
            "validate-config" => self.validate = true,
            "reconfiguration-delay-ms" => match v.parse() {
                Ok(ms) => self.reconfiguration_delay = Duration::from_millis(ms),
                Err(_) => log(&format!("bad reconfiguration-delay-ms {v:?}, ignored")),
            },
            "disable-reload-configs" => self.disable_reload = true,
            "listen-sock-fd" => match v.parse() {
                Ok(fd) => self.listen_sock_fd = fd,
                Err(_) => log(&format!("bad listen-sock-fd {v:?}, ignored")),
            },
            "config-dump-root" => self.config_dump_root = v,
            "max-dumped-config-age" => match v.parse() {
                Ok(s) => self.max_dumped_config_age = Duration::from_secs(s),
                Err(_) => log(&format!("bad max-dumped-config-age {v:?}, ignored")),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Options {
        Options::parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn spellings() {
        let o = parse("-p 5000 -f /c.json -R dc/c0 --reconfiguration-delay-ms=50");
        assert_eq!(o.ports, [5000]);
        assert_eq!(o.config_file.as_deref(), Some("/c.json"));
        assert_eq!(o.route_prefix, "/dc/c0/");
        assert_eq!(o.reconfiguration_delay, Duration::from_millis(50));
        let o = parse(
            "--port=1,2 --config-f /x --reconfiguration-d 7 --config=file:/y --validate-config=exit",
        );
        assert_eq!(o.ports, [1, 2]);
        assert_eq!(o.config_file.as_deref(), Some("/x"));
        assert_eq!(o.config_arg.as_deref(), Some("file:/y"));
        assert_eq!(o.reconfiguration_delay, Duration::from_millis(7));
        assert!(o.validate);
    }

    #[test]
    fn a_bad_prefix_falls_back_silently_and_unknown_options_are_ignored() {
        let o = parse("-R /a/ --frobnicate -p 1 flavor.json");
        assert_eq!(o.route_prefix, "/././");
        assert_eq!(o.ports, [1]);
    }
}

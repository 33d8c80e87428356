//! Vetting the command after `--` before mcw launches it.
//!
//! Owns the rules for mcrouter's own arguments (those after the first word whose file name is
//! `mcrouter`): refusing what mcw owns or mcrouter would misread, and picking out what mcw
//! needs to know (ports, listen addresses, routing prefix). Parsing follows glibc
//! `getopt_long`: `--opt=v` or `--opt v`, unambiguous abbreviations, `-fX` clusters, `--` ends
//! options. Pure: strings in, a verdict out.

use std::path::Path;

/// Long options mcw refuses, each with the reason given to the user.
const REFUSED_LONG: &[(&str, &str)] = &[
    (
        "config-file",
        "mcw passes the rendered config itself with -f",
    ),
    (
        "config",
        "mcw passes the rendered config itself with -f (and --config silently wins over -f)",
    ),
    (
        "config-str",
        "an inline config never reloads, and with -f it is fatal",
    ),
    (
        "validate-config",
        "it makes mcrouter exit after checking the config; use mcw's --validate",
    ),
    (
        "disable-reload-configs",
        "mcrouter would never load the configs mcw writes",
    ),
    (
        "constantly-reload-configs",
        "mcw rewrites the config only when it changes; mcrouter reloads it on its own",
    ),
];

/// Short options of mcrouter that take a value (the rest of the word or the next word).
const SHORT_WITH_VALUE: &[char] = &[
    'p', 'f', 'R', 'L', 'a', 'b', 'c', 'd', 'n', 'P', 's', 't', 'T',
];

/// What mcw learned from the command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The command as given (mcw appends `-f PATH` when spawning).
    pub command: Vec<String>,
    /// Index of the word named mcrouter, if any; `None` means nothing was vetted.
    pub mcrouter_at: Option<usize>,
    /// `-p` / `--port` values, comma lists flattened.
    pub ports: Vec<String>,
    /// `--listen-addresses` values, comma lists flattened.
    pub listen_addresses: Vec<String>,
    /// The last `-R` / `--route-prefix` value, as written.
    pub route_prefix: Option<String>,
    /// `--reconfiguration-delay-ms`, when given: how long mcrouter waits before it reloads.
    pub reconfiguration_delay_ms: Option<u64>,
    /// `--reconfiguration-jitter-ms`, when given: a random extra wait of up to this long.
    pub reconfiguration_jitter_ms: Option<u64>,
    /// `--max-dumped-config-age` was given (mcw then leaves mcrouter's startup fallback to a
    /// dumped config as the command sets it).
    pub sets_dump_age: bool,
    /// `--tcp-listen-backlog`, when given (mcrouter's default is 4096).
    pub tcp_listen_backlog: Option<u32>,
    /// Something else than one plain TCP port would be listened on: `--listen-sock-fd`,
    /// `--ssl-port` or `--unix-domain-sock` was given (the option's name).
    pub other_listener: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("no command after --: use mcw run [OPTIONS] -- mcrouter ARGS…")]
    Empty,
    #[error("mcrouter argument {arg:?} is refused: {why}")]
    Refused { arg: String, why: String },
    #[error(
        "mcrouter argument {0:?} is positional: mcrouter would read it as a flavor (options) file; write options as --name=value"
    )]
    Positional(String),
    #[error(
        "mcrouter's arguments end with --: mcw appends -f CONFIG after them, which mcrouter would then read as a positional (a flavor file) instead of its config; remove the --"
    )]
    TrailingDashes,
    #[error("mcrouter argument {arg:?}: {value:?} is not a number of milliseconds")]
    NotMillis { arg: String, value: String },
    #[error("mcrouter argument {arg:?}: {value:?} is not a number")]
    NotNumber { arg: String, value: String },
}

/// Vet `command`; `name` is the file name that marks mcrouter (`--mcrouter-name`).
pub fn vet(command: &[String], name: &str) -> Result<Launch, ArgError> {
    if command.is_empty() {
        return Err(ArgError::Empty);
    }
    let mut launch = Launch {
        command: command.to_vec(),
        ..Launch::default()
    };
    let Some(at) = command
        .iter()
        .position(|w| Path::new(w).file_name().is_some_and(|f| f == name))
    else {
        return Ok(launch);
    };
    launch.mcrouter_at = Some(at);
    let mut i = at + 1;
    while i < command.len() {
        let word = &command[i];
        i += 1;
        if word == "--" {
            return Err(match command.get(i) {
                Some(rest) => ArgError::Positional(rest.clone()),
                None => ArgError::TrailingDashes,
            });
        }
        if let Some(long) = word.strip_prefix("--") {
            let (opt, inline) = match long.split_once('=') {
                Some((o, v)) => (o, Some(v.to_string())),
                None => (long, None),
            };
            refuse_long(word, opt)?;
            let value = match inline {
                Some(v) => Some(v),
                // `--opt value`: an option written without `=` takes the next word unless
                // that word is itself an option.
                None => match command.get(i) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                        Some(next.clone())
                    }
                    _ => None,
                },
            };
            record_long(&mut launch, word, opt, value)?;
        } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (at, c) in cluster.char_indices() {
                if c == 'f' {
                    return Err(ArgError::Refused {
                        arg: word.clone(),
                        why: REFUSED_LONG[0].1.to_string(),
                    });
                }
                if SHORT_WITH_VALUE.contains(&c) {
                    let rest = &cluster[at + c.len_utf8()..];
                    let value = if rest.is_empty() {
                        i += 1;
                        command.get(i - 1).cloned()
                    } else {
                        Some(rest.to_string())
                    };
                    record_short(&mut launch, c, value);
                    break;
                }
            }
        } else {
            return Err(ArgError::Positional(word.clone()));
        }
    }
    Ok(launch)
}

/// Refuse `--opt` when it names, or abbreviates, an option mcw owns.
fn refuse_long(word: &str, opt: &str) -> Result<(), ArgError> {
    if opt.is_empty() {
        return Ok(());
    }
    let exact = REFUSED_LONG.iter().find(|(name, _)| *name == opt);
    let abbreviates: Vec<&str> = REFUSED_LONG
        .iter()
        .filter(|(name, _)| name.starts_with(opt))
        .map(|(name, _)| *name)
        .collect();
    let why = match (exact, abbreviates.as_slice()) {
        (Some((_, why)), _) => why.to_string(),
        (None, []) => return Ok(()),
        (None, [one]) => {
            let why = REFUSED_LONG
                .iter()
                .find(|(n, _)| n == one)
                .map_or("", |(_, w)| w);
            format!("it abbreviates --{one}, and {why}")
        }
        (None, many) => format!(
            "it abbreviates {}, which mcw owns",
            many.iter()
                .map(|n| format!("--{n}"))
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    };
    Err(ArgError::Refused {
        arg: word.to_string(),
        why,
    })
}

fn split_list(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Long options whose values mcw reads, so that an abbreviation is taken only when it names
/// exactly one of them (getopt itself refuses an ambiguous one, and mcrouter then ignores it).
const RECORDED_LONG: &[&str] = &[
    "port",
    "listen-addresses",
    "route-prefix",
    "reconfiguration-delay-ms",
    "reconfiguration-jitter-ms",
    "max-dumped-config-age",
    "tcp-listen-backlog",
    "listen-sock-fd",
    "ssl-port",
    "unix-domain-sock",
];

/// Which of [`RECORDED_LONG`] `opt` names: itself, or an abbreviation of at least 4
/// characters that fits no other.
fn recorded(opt: &str) -> Option<&'static str> {
    if let Some(exact) = RECORDED_LONG.iter().find(|full| **full == opt) {
        return Some(exact);
    }
    let mut fits = RECORDED_LONG.iter().filter(|full| full.starts_with(opt));
    match (fits.next(), fits.next()) {
        (Some(one), None) if opt.len() >= 4 => Some(one),
        _ => None,
    }
}

fn record_long(
    launch: &mut Launch,
    word: &str,
    opt: &str,
    value: Option<String>,
) -> Result<(), ArgError> {
    let Some(value) = value else { return Ok(()) };
    let millis = || {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| ArgError::NotMillis {
                arg: word.to_string(),
                value: value.clone(),
            })
    };
    match recorded(opt) {
        Some("port") => launch.ports.extend(split_list(&value)),
        Some("listen-addresses") => launch.listen_addresses.extend(split_list(&value)),
        Some("route-prefix") => launch.route_prefix = Some(value),
        Some("reconfiguration-delay-ms") => launch.reconfiguration_delay_ms = Some(millis()?),
        Some("reconfiguration-jitter-ms") => launch.reconfiguration_jitter_ms = Some(millis()?),
        Some("max-dumped-config-age") => launch.sets_dump_age = true,
        Some("tcp-listen-backlog") => {
            let n = value
                .trim()
                .parse::<u32>()
                .map_err(|_| ArgError::NotNumber {
                    arg: word.to_string(),
                    value: value.clone(),
                })?;
            launch.tcp_listen_backlog = Some(n);
        }
        Some(name @ ("listen-sock-fd" | "ssl-port" | "unix-domain-sock")) => {
            // mcrouter's defaults (-1, empty) mean "none".
            let none = matches!(value.trim(), "" | "-1");
            if !none {
                launch.other_listener = Some(name);
            }
        }
        _ => {}
    }
    Ok(())
}

fn record_short(launch: &mut Launch, opt: char, value: Option<String>) {
    let Some(value) = value else { return };
    match opt {
        'p' => launch.ports.extend(split_list(&value)),
        'R' => launch.route_prefix = Some(value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_documented_usage_is_accepted_and_understood() {
        let launch = vet(&words("mcrouter -p 5000 -R /dc/c0/"), "mcrouter").unwrap();
        assert_eq!(launch.mcrouter_at, Some(0));
        assert_eq!(launch.ports, ["5000"]);
        assert_eq!(launch.route_prefix.as_deref(), Some("/dc/c0/"));

        let wrapped = vet(
            &words("taskset -c 1 /usr/bin/mcrouter --port=5000,5001 --listen-addresses 127.0.0.1 --num-proxies 4 -R/a/b/"),
            "mcrouter",
        )
        .unwrap();
        assert_eq!(wrapped.mcrouter_at, Some(3));
        assert_eq!(wrapped.ports, ["5000", "5001"]);
        assert_eq!(wrapped.listen_addresses, ["127.0.0.1"]);
        assert_eq!(wrapped.route_prefix.as_deref(), Some("/a/b/"));
    }

    #[test]
    fn every_refused_spelling() {
        let cases = [
            ("mcrouter -f /etc/x.json", "-f"),
            ("mcrouter -f/etc/x.json", "-f/etc/x.json"),
            ("mcrouter -p 5000 -f x", "-f"),
            ("mcrouter --config-file=/x", "--config-file=/x"),
            ("mcrouter --config-file /x", "--config-file"),
            ("mcrouter --config-f=/x", "--config-f=/x"),
            ("mcrouter --config=file:/x", "--config=file:/x"),
            ("mcrouter --config-str={}", "--config-str={}"),
            ("mcrouter --config-s {}", "--config-s"),
            ("mcrouter --validate-config=exit", "--validate-config=exit"),
            ("mcrouter --validate-config", "--validate-config"),
            ("mcrouter --validate", "--validate"),
            (
                "mcrouter --disable-reload-configs",
                "--disable-reload-configs",
            ),
            ("mcrouter --disable-reload", "--disable-reload"),
            (
                "mcrouter --constantly-reload-configs",
                "--constantly-reload-configs",
            ),
            ("mcrouter --conf", "--conf"),
        ];
        for (cmd, arg) in cases {
            match vet(&words(cmd), "mcrouter") {
                Err(ArgError::Refused { arg: got, why }) => {
                    assert_eq!(got, arg, "{cmd}");
                    assert!(!why.is_empty());
                }
                other => panic!("{cmd}: {other:?}"),
            }
        }
    }

    /// Regression: a trailing `--` was accepted, and the `-f CONFIG` mcw appends after it
    /// became a positional (a flavor file) for mcrouter.
    #[test]
    fn a_trailing_double_dash_is_refused() {
        assert_eq!(
            vet(&words("mcrouter -p 1 --"), "mcrouter"),
            Err(ArgError::TrailingDashes)
        );
    }

    #[test]
    fn the_reload_delay_and_jitter_are_read_in_every_spelling() {
        let launch = vet(
            &words("mcrouter --reconfiguration-delay-ms=250 --reconfiguration-j 40"),
            "mcrouter",
        )
        .unwrap();
        assert_eq!(launch.reconfiguration_delay_ms, Some(250));
        assert_eq!(launch.reconfiguration_jitter_ms, Some(40));
        let unset = vet(&words("mcrouter -p 5000"), "mcrouter").unwrap();
        assert_eq!(unset.reconfiguration_delay_ms, None);
        // Ambiguous between the two: getopt refuses it, so mcw reads nothing from it.
        let ambiguous = vet(&words("mcrouter --reconfiguration=5"), "mcrouter").unwrap();
        assert_eq!(ambiguous.reconfiguration_delay_ms, None);
        assert!(matches!(
            vet(
                &words("mcrouter --reconfiguration-delay-ms=soon"),
                "mcrouter"
            ),
            Err(ArgError::NotMillis { .. })
        ));
    }

    #[test]
    fn positional_arguments_are_refused() {
        for cmd in [
            "mcrouter flavor.json",
            "mcrouter -p 5000 /etc/mcrouter/flavor",
            "mcrouter -p 5000 -- x",
        ] {
            assert!(
                matches!(vet(&words(cmd), "mcrouter"), Err(ArgError::Positional(_))),
                "{cmd}"
            );
        }
        // A value after an option that takes one is not positional.
        assert!(vet(&words("mcrouter --num-proxies 4 -p 5000"), "mcrouter").is_ok());
    }

    #[test]
    fn without_a_word_named_mcrouter_nothing_is_vetted() {
        let launch = vet(&words("my-wrapper -f x flavor"), "mcrouter").unwrap();
        assert_eq!(launch.mcrouter_at, None);
        let renamed = vet(&words("mcr -f x"), "mcr");
        assert!(
            renamed.is_err(),
            "--mcrouter-name changes the word looked for"
        );
        assert_eq!(vet(&[], "mcrouter"), Err(ArgError::Empty));
    }
}

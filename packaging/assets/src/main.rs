//! Writes mcw's man pages (`mcw.1`, `mcw-run.1`, …) and its bash, zsh and fish completions,
//! generated from the same clap definition the binary parses, so they cannot drift from it and
//! cost the runtime binary nothing. Run at package time:
//!
//! ```sh
//! cargo run -p mcw-assets -- target/assets   # man/*.1, completions/{mcw.bash,_mcw,mcw.fish}
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: mcw-assets OUT_DIR  (writes OUT_DIR/man/*.1 and OUT_DIR/completions/*)");
        return ExitCode::from(2);
    };
    match write_all(&out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcw-assets: cannot write to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// Write the man pages and completions under `out`; returns the files written.
fn write_all(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(mcw::cli::Cli::command(), &man)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = mcw::cli::Cli::command();
        files.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "mcw",
            &completions,
        )?);
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every long option of every subcommand appears in that subcommand's page and in each
    /// completion, and the bash completion is valid bash.
    #[test]
    fn pages_and_completions_cover_every_option() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_all(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "mcw.1",
            "mcw-render.1",
            "mcw-check.1",
            "mcw-diff.1",
            "mcw-watch.1",
            "mcw-run.1",
            "mcw.bash",
            "_mcw",
            "mcw.fish",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        let read = |name: &str| {
            let path = files.iter().find(|f| f.ends_with(name)).unwrap();
            std::fs::read_to_string(path).unwrap()
        };
        let root = mcw::cli::Cli::command();
        for sub in root.get_subcommands() {
            let page = read(&format!("mcw-{}.1", sub.get_name()));
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                // roff escapes each '-' of an option as '\-'.
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(
                    page.contains(&roff),
                    "mcw-{}.1 lacks --{long}",
                    sub.get_name()
                );
                for completion in ["mcw.bash", "_mcw", "mcw.fish"] {
                    let text = read(completion);
                    assert!(
                        text.contains(&format!("--{long}")) || text.contains(&format!("-l {long}")),
                        "{completion} lacks --{long}"
                    );
                }
            }
        }
        let bash = files.iter().find(|f| f.ends_with("mcw.bash")).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(bash)
            .status()
            .unwrap();
        assert!(status.success(), "the bash completion does not parse");
    }

    /// The environment file installed as /etc/default/mcw and /etc/sysconfig/mcw names every
    /// variable `mcw run` reads and no other; a commented-out `#VAR=value` shows the default.
    #[test]
    fn the_environment_file_documents_every_variable_of_run() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../mcw.env");
        let text = std::fs::read_to_string(path).unwrap();
        let mut file: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let line = line.strip_prefix('#').unwrap_or(line);
            if let Some((name, value)) = line.split_once('=')
                && name.starts_with("MCW_")
                && !name.contains(' ')
            {
                file.push((name.to_string(), value.to_string()));
            }
        }
        let root = mcw::cli::Cli::command();
        let run = root.find_subcommand("run").unwrap();
        let mut from_cli = vec!["MCW_LOG".to_string()];
        // `--log-format` is global: it is the root command's.
        for arg in run.get_arguments().chain(root.get_arguments()) {
            let Some(env) = arg.get_env() else { continue };
            let env = env.to_string_lossy().into_owned();
            let Some((_, shown)) = file.iter().find(|(n, _)| *n == env) else {
                panic!("{path} does not document {env}");
            };
            if let Some(default) = arg.get_default_values().first() {
                assert_eq!(
                    shown,
                    &*default.to_string_lossy(),
                    "{env}'s default in {path}"
                );
            }
            from_cli.push(env);
        }
        for (name, _) in &file {
            assert!(
                from_cli.contains(name),
                "{path} names {name}, which mcw run does not read"
            );
        }
    }
}

//! The `mcw` binary: parse the command line, set up logging, run the command, map the result
//! to an exit code (0 ok, 1 failure, 2 usage — clap exits with 2 itself).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mcw::cli::{Cli, Command, Format};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // One thread: mcw waits on DNS, files and a child; it never needs two cores, and a single
    // thread keeps it small and free of cross-thread wake-ups.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Render(args) => mcw::app::render(args).await.map(|()| 0),
            Command::Check(args) => mcw::app::check(args).await.map(|()| 0),
            Command::Diff(args) => mcw::app::diff(args)
                .await
                .map_err(|e| mcw::error::Error::Trouble(Box::new(e))),
            Command::Watch(args) => mcw::app::watch(args).await,
            Command::Run(args) => mcw::app::run(args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            report(&format!("{err:#}"));
            ExitCode::from(err.exit_code())
        }
    }
}

/// The last word on stderr. If stderr is gone (a closed pipe), there is no one to tell, and
/// the exit code still says it: `eprintln!` would panic instead.
fn report(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "mcw: {message}");
}

fn init_logging(format: Format) {
    // hickory logs every retry at warn; mcw reports DNS outcomes itself.
    let default = "info,hickory_resolver=error,hickory_net=error,hickory_proto=error";
    let filter = std::env::var("MCW_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    // Colours only for a person at a terminal, never in files or journald.
    // A log line that cannot be written (stderr is a closed pipe) is dropped: by default the
    // subscriber would report that on stderr too, and that report panics.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::new(filter));
    match format {
        // The journal stamps every line itself: a second timestamp is noise there.
        Format::Text if stderr_is_the_journal() => builder.without_time().init(),
        Format::Text => builder.init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
}

/// True when stderr is connected to systemd's journal: systemd then sets JOURNAL_STREAM to
/// the stream's "device:inode", which a redirected stderr no longer matches.
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| stream == format!("{}:{}", m.dev(), m.ino()))
}

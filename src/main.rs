//! The `mcw` binary: parse the command line, set up logging, run the command, map the result
//! to an exit code (0 ok, 1 failure, 2 usage — clap exits with 2 itself).

use std::process::ExitCode;

use clap::Parser;
use mcw::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logging = mcw::logging::init(cli.log_format);
    let result = run(&cli);
    // What is still queued goes out before the last word.
    drop(logging);
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            report(&format!("{err:#}"));
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<u8, mcw::error::Error> {
    // One thread: mcw waits on DNS, files and a child; it never needs two cores, and a single
    // thread keeps it small and free of cross-thread wake-ups.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| mcw::error::Error::Setup {
            what: "the async runtime",
            source,
        })?;
    runtime.block_on(async {
        match &cli.command {
            Command::Render(args) => mcw::app::render(args).await.map(|()| 0),
            Command::Check(args) => mcw::app::check(args).await.map(|()| 0),
            Command::Diff(args) => mcw::app::diff(args)
                .await
                .map_err(|e| mcw::error::Error::Trouble(Box::new(e))),
            Command::Watch(args) => mcw::app::watch(args).await,
            Command::Run(args) => mcw::app::run(args).await,
        }
    })
}

/// The last word on stderr. If stderr is gone (a closed pipe), there is no one to tell, and
/// the exit code still says it: `eprintln!` would panic instead.
fn report(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "mcw: {message}");
}

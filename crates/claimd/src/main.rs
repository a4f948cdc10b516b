//! The `claimd` binary: `serve` runs the API; `init` prepares the database; `org` and `token`
//! manage organizations and credentials directly in the database; `dry-run` shows what a
//! verification would see; `events` and `webhook` read the audit log and webhooks. Wiring only —
//! the behaviour lives in the library crates.

mod admin;
mod audit;
mod cli;
mod client;
mod config;
mod dry_run;
mod log;
mod serve;
mod store;

use std::process::ExitCode;

use cli::{Cli, Command, ConfigCommand, LogFormat};

/// mimalloc instead of the system allocator: a request allocates and frees many small buffers
/// across threads, and glibc's malloc was a tenth of a read's profile (docs/performance.md).
/// Built without transparent huge pages (`no_thp`), which had taken peak RSS from 37 to 58 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let (cli, settings) = match config::parse(std::env::args_os().collect()) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("claimd: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Log lines are written to stderr in batches (see `log`); `_flush` writes the rest on exit.
    let (writer, _flush) = log::batched_stderr();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLAIMD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One object per line: time, level, target, and the event's fields at the top level.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match cli.command {
        Command::Domain(args) => return client::run(args).await,
        Command::Config(ConfigCommand::Show(_)) => {
            settings.show();
            return ExitCode::SUCCESS;
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "claimd", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Openapi { public_url } => {
            let document = claimd_http::routes::openapi_document(&public_url);
            return match serde_json::to_string_pretty(&document) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("claimd: cannot render the document: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(command).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("claimd: cannot write the manual page: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claimd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let create = match cli.command {
        Command::Serve(_) | Command::Init => store::Create::IfMissing,
        _ => store::Create::Never,
    };
    let store = store::open(&cli.db, create).await?;
    match cli.command {
        Command::Serve(args) => serve::run(store, *args).await,
        Command::Init => {
            eprintln!("the database is ready: created if it was missing, its schema up to date");
            Ok(())
        }
        Command::Org(command) => admin::org(&*store, command).await,
        Command::Token(command) => admin::token(&*store, command).await,
        Command::DryRun(args) => dry_run::run(&*store, args).await,
        Command::Events(args) => audit::events(&*store, args).await,
        Command::Webhook(command) => audit::webhook(&*store, command).await,
        // Answered in `main`, before any database is opened.
        Command::Domain(_)
        | Command::Completions { .. }
        | Command::Man
        | Command::Openapi { .. }
        | Command::Config(_) => Ok(()),
    }
}

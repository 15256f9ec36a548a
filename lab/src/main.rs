//! `faultline`: the lab's command line.

mod up;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    about = "Measure what infrastructure failures do to users, data and revenue, architecture against architecture"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring up and tear down the real stack.
    Stack {
        #[command(subcommand)]
        command: StackCommand,
    },
    /// Stop processes left behind by a runner that was itself killed.
    Clean {
        /// Folder to search for pid files (recursively).
        #[arg(default_value = ".faultline")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StackCommand {
    /// Start PostgreSQL, the broker and the services, print every URL, and
    /// tear everything down on Ctrl-C.
    Up(up::UpArgs),
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    match cli.command {
        Command::Stack {
            command: StackCommand::Up(args),
        } => runtime.block_on(up::run(args)),
        Command::Clean { dir } => {
            let stopped = clean(&dir);
            println!("stopped {} leftover process group(s)", stopped.len());
            Ok(())
        }
    }
}

/// Stops what pid files under `dir` name, at any depth.
fn clean(dir: &std::path::Path) -> Vec<u32> {
    let mut stopped = faultline_stack::process::clean_leftovers(dir);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stopped.extend(clean(&entry.path()));
            }
        }
    }
    stopped
}

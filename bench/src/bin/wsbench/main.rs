//! `wsbench`: WebSocket echo backend and load generator for wsproxy-fast.
//!
//! This file parses the command line, runs the subcommand, prints its
//! result and maps it to the exit status: 0 for a clean run, 1 for a run
//! with connection errors or echo mismatches (or a failed `send`), 2 for
//! flags that cannot work together or a failure to set up.
//!
//! | file | owns |
//! |---|---|
//! | `cli.rs` | clap derive; doc comments are the `--help` text |
//! | `target.rs` | `ws://` and `wss://` URL parsing, source-address rotation |
//! | `tls.rs` | the rustls client configuration from the flags; what handshakes negotiated |
//! | `net.rs` | socket2: `SO_REUSEPORT` listeners, non-blocking connects |
//! | `sys.rs` | the `timerfd` (all `unsafe`) |
//! | `frames.rs` | the streaming frame walker |
//! | `server.rs` | the `echo-server` reactor |
//! | `send.rs` | the `send` subcommand |
//! | `load/` | the load modes, their connection state machine and transport (TCP or TLS), messages |
//! | `soak/` | the `soak` mode: mixed streams, injected aborts, every echoed byte checked |
//! | `fleet.rs` | the `keys` and `steady` modes: keyed clients of a fleet of proxies, which backend answered, reconnects |
//! | `attack.rs` | the `attack` mode: connection flood, slowloris, slow readers, header bombs, idle connections |
//! | `report.rs` | latency histograms, error counts, summary line and JSON |
//! | `error.rs` | set-up errors |

mod attack;
mod cli;
mod error;
mod fleet;
mod frames;
mod load;
mod net;
mod report;
mod send;
mod server;
mod soak;
mod sys;
mod target;
mod tls;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::report::Outcome;

/// Exit status of a run that finished with errors or mismatches.
const EXIT_DIRTY: u8 = 1;
/// Exit status for bad flags or a failure to set up.
const EXIT_SETUP: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (json, result) = match &cli.command {
        Command::EchoServer(args) => (
            false,
            server::run(args.listen, usize::from(args.threads), args.name.as_deref())
                .map(|()| None),
        ),
        Command::Send(args) => {
            return match send::run(args) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("wsbench send: {}: {err}", args.url);
                    ExitCode::from(EXIT_DIRTY)
                }
            };
        }
        Command::Echo(args) => (args.load.json, load::echo::run(args).map(Some)),
        Command::Rate(args) => (args.load.json, load::rate::run(args).map(Some)),
        Command::Handshakes(args) => (args.load.json, load::handshakes::run(args).map(Some)),
        Command::Hold(args) => (args.load.json, load::hold::run(args).map(Some)),
        Command::Keys(args) => (args.json, fleet::keys(args).map(Some)),
        Command::Steady(args) => (args.json, fleet::steady(args).map(Some)),
        Command::Soak(args) => (args.json, soak::run(args).map(Some)),
        Command::Attack(args) => (args.json, attack::run(args).map(Some)),
    };
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(outcome)) => report(&outcome, json),
        Err(err) => {
            eprintln!("wsbench: {err}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

/// Prints a load run: the summary on stdout, or with `--json` the JSON
/// object on stdout and the summary on stderr.
fn report(outcome: &Outcome, json: bool) -> ExitCode {
    if json {
        println!("{}", outcome.json);
        eprintln!("{}", outcome.summary);
    } else {
        println!("{}", outcome.summary);
    }
    if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIRTY)
    }
}

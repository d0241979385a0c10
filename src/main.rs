//! The `wsproxy-fast` binary: parse the command line, validate the
//! configuration, bind every listener, start one worker per core, and wait
//! for SIGINT/SIGTERM. Exit status 0 after a signal; 1 with a one-line
//! message when startup fails or a worker dies.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;

use clap::Parser;
use mio::net::TcpListener;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use wsproxy_fast::cli::Cli;
use wsproxy_fast::config::{Config, ConfigError};
use wsproxy_fast::listener::{self, BindError};
use wsproxy_fast::log::{self, Level};
use wsproxy_fast::worker::{Control, Worker};
use wsproxy_fast::{error, info};

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot start: {0}")]
    Start(#[from] std::io::Error),
    #[error("a worker failed; stopped the others")]
    WorkerFailed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::set_level(cli.log_level);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsproxy-fast: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the worker's id when its thread ends, panicking or not.
struct Finished(mpsc::Sender<usize>, usize);

impl Drop for Finished {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

fn run(cli: &Cli) -> Result<(), RunError> {
    let config = Arc::new(Config::from_cli(cli)?);

    // Bind everything before starting anything, so a bad address fails
    // startup instead of leaving a half-working proxy.
    let mut per_worker: Vec<Vec<TcpListener>> = (0..config.workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for addr in &config.listen {
        let b = listener::bind(*addr, config.workers, config.timeouts.handshake)?;
        bound.push(b.addr);
        for (worker, socket) in per_worker.iter_mut().zip(b.sockets) {
            worker.push(socket);
        }
    }
    // Registered before any worker runs, so no signal is missed.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;

    let control = Control::new();
    let (finished_tx, finished_rx) = mpsc::channel();
    let mut wakers = Vec::new();
    let mut threads = Vec::new();
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let (mut worker, waker) =
            Worker::new(id, listeners, Arc::clone(&config), Arc::clone(&control))?;
        wakers.push(waker);
        let finished = Finished(finished_tx.clone(), id);
        let thread = thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                let _finished = finished;
                worker.run()
            })?;
        threads.push(thread);
    }
    // Startup lines print at any log level: scripts that ask for port 0
    // learn the real one from them.
    for addr in &bound {
        log::write(Level::Info, format_args!("listening on {addr}"));
    }
    log::write(
        Level::Info,
        format_args!(
            "wsproxy-fast {} ready: {} workers, upstreams {}",
            env!("CARGO_PKG_VERSION"),
            config.workers,
            config
                .upstreams
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    let stop = {
        let control = Arc::clone(&control);
        let wakers = wakers.clone();
        move || {
            control.stop.store(true, Ordering::Release);
            for waker in &wakers {
                if let Err(e) = waker.wake() {
                    error!("cannot wake a worker: {e}");
                }
            }
        }
    };
    let on_signal = stop.clone();
    let signal_handle = signals.handle();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                info!("{name} received; stopping");
                on_signal();
            }
        })?;

    // Workers end only when told to; one that ends first has failed.
    let first = finished_rx
        .recv()
        .expect("worker threads hold senders until they end");
    let mut failed = !control.stop.load(Ordering::Acquire);
    if failed {
        error!("worker {first} stopped unexpectedly; stopping the others");
    }
    stop();
    for (id, thread) in threads.into_iter().enumerate() {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!("worker {id} failed: {e}");
                failed = true;
            }
            Err(_) => {
                error!("worker {id} panicked");
                failed = true;
            }
        }
    }
    signal_handle.close();
    if failed {
        return Err(RunError::WorkerFailed);
    }
    info!("stopped");
    Ok(())
}

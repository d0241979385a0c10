//! The `wsproxy-fast` binary: parse the command line, validate the
//! configuration, bind every listener, start one worker per core, and wait
//! for SIGINT/SIGTERM, which drain the workers (a second one stops them at
//! once). Exit status 0 after a signal; 1 with a one-line message when
//! startup fails or a worker dies.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Instant;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use wsproxy_fast::access_log::{self, Sink};
use wsproxy_fast::activation::Passed;
use wsproxy_fast::admin::Admin;
use wsproxy_fast::cli::{Cli, ImportCli};
use wsproxy_fast::config::{self, Config, ConfigError, LoadError};
use wsproxy_fast::control::{self, ControlSocket, Giver, TakeoverError};
use wsproxy_fast::listener::BindError;
use wsproxy_fast::log::{self, Level};
use wsproxy_fast::metrics::Shard;
use wsproxy_fast::reload::{Reloader, Sockets};
use wsproxy_fast::worker::{Command, Control, Drain, Worker};
use wsproxy_fast::{error, info, warn};
use wsproxy_fast::{nginx, sys};

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("cannot start: {0}")]
    Start(#[from] std::io::Error),
    #[error("cannot open the access log {0:?}: {1}")]
    AccessLog(wsproxy_fast::access_log::Destination, std::io::Error),
    #[error("cannot serve the admin endpoints on {0}: {1}")]
    Admin(std::net::SocketAddr, std::io::Error),
    #[error(transparent)]
    Takeover(#[from] TakeoverError),
    #[error("cannot serve the control socket {0}: {1}")]
    Control(std::path::PathBuf, std::io::Error),
    #[error("socket activation: {0}")]
    Activation(String),
    #[error("a worker failed; stopped the others")]
    WorkerFailed,
}

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "import-nginx")
    {
        let import = ImportCli::parse_from(std::env::args_os().skip(1));
        return import_nginx(&import);
    }
    let cli = Cli::parse();
    log::set_level(cli.log_level);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line per problem: a config file can have several.
            for line in e.to_string().lines() {
                eprintln!("wsproxy-fast: error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `import-nginx`: the translation on stdout (or `-o`), notes on stderr;
/// 1 with every error when a directive cannot be expressed or the result
/// does not load.
fn import_nginx(import: &ImportCli) -> ExitCode {
    let path = &import.nginx_conf;
    let translation = match nginx::translate(path, Some(&import.nginx_prefix)) {
        Ok(t) => t,
        Err(notes) => {
            for n in &notes {
                let kind = match n.severity {
                    nginx::Severity::Error => "error",
                    nginx::Severity::Note => "note",
                };
                eprintln!("wsproxy-fast: {kind}: {n}");
            }
            return ExitCode::FAILURE;
        }
    };
    for n in &translation.notes {
        eprintln!("wsproxy-fast: note: {n}");
    }
    if let Err(e) = translation.load(path) {
        for line in e.to_string().lines() {
            eprintln!("wsproxy-fast: error: {line}");
        }
        return ExitCode::FAILURE;
    }
    let written = match &import.output {
        Some(out) => std::fs::write(out, &translation.toml)
            .map_err(|e| format!("cannot write {}: {e}", out.display())),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(translation.toml.as_bytes())
                .map_err(|e| format!("cannot write to stdout: {e}"))
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsproxy-fast: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft open-file limit to the hard one: (before, after).
fn raise_nofile_limit() -> Option<(u64, u64)> {
    let (before, _) = sys::nofile_limits().ok()?;
    match sys::raise_nofile_limit() {
        Ok(after) => Some((before, after)),
        Err(e) => {
            warn!("cannot raise the open-file limit from {before}: {e}");
            Some((before, before))
        }
    }
}

/// SIGHUP: every TLS listener re-reads its certificate and key files. New
/// handshakes use the new ones; live connections keep theirs. A file that
/// fails to load leaves that listener's certificates as they were.
fn reload_certificates(config: &Config) {
    for l in &config.listeners {
        let Some(tls) = &l.tls else {
            continue;
        };
        match tls.reload() {
            Ok(n) => log::write(
                Level::Info,
                format_args!(
                    "SIGHUP: listener {}: reloaded {}",
                    l.addr,
                    log::count(n, "certificate")
                ),
            ),
            Err(e) => error!(
                "SIGHUP: listener {}: {e}; keeping the certificates loaded before",
                l.addr
            ),
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

/// Below this many open files the proxy says the limit is low.
const LOW_NOFILE: u64 = 65_536;

/// Every worker's command channel and waker.
type Workers = Vec<(mpsc::Sender<Command>, Arc<mio::Waker>)>;

/// Tells every worker to stop accepting and drain; returns once each has
/// let go of its listeners (false if one did not take the command).
fn drain_workers(workers: &Workers, drain: config::Drain, handing_over: bool) -> bool {
    let deadline = Instant::now() + drain.timeout;
    let (released, acks) = mpsc::channel();
    for (tx, waker) in workers {
        let command = Command::Drain(Drain {
            deadline,
            spread: drain.spread,
            handing_over,
            released: Some(released.clone()),
        });
        if tx.send(command).is_err() || waker.wake().is_err() {
            return false;
        }
    }
    drop(released);
    // Every sender is dropped once its worker has answered, or has ended.
    let limit = Instant::now() + std::time::Duration::from_secs(5);
    while acks
        .recv_timeout(limit.saturating_duration_since(Instant::now()))
        .is_ok()
    {}
    true
}

/// Whether a socket bound to `actual` serves the configured `addr`.
fn serves(addr: std::net::SocketAddr, actual: std::net::SocketAddr) -> bool {
    addr == actual || (addr.port() == 0 && addr.ip() == actual.ip())
}

fn run(cli: &Cli) -> Result<(), RunError> {
    // Before anything opens a descriptor: those a service manager passed.
    let passed = Passed::take().map_err(RunError::Activation)?;
    // Before the configuration, whose default connection limit follows it.
    let nofile = raise_nofile_limit();
    let source = match (&cli.config, &cli.nginx_config) {
        (Some(path), _) => Some(config::Source::File(path.clone())),
        (None, Some(path)) => Some(config::Source::Nginx {
            path: path.clone(),
            prefix: cli
                .nginx_prefix
                .clone()
                .unwrap_or_else(|| nginx::DEFAULT_PREFIX.into()),
        }),
        (None, None) => None,
    };
    let mut config = match &source {
        Some(source) => source.load()?,
        None => Config::from_cli(cli)?,
    };
    if let Some(path) = &cli.control_socket {
        config.control_socket = Some(path.clone());
    }
    if cli.check {
        let source = source.as_ref().map_or_else(
            || "the command line".into(),
            |s| s.path().display().to_string(),
        );
        println!(
            "{source}: configuration is valid: {}, {}",
            log::count(config.workers, "worker"),
            config.summary()
        );
        return Ok(());
    }
    let config = Arc::new(config);

    // Bind everything before starting anything, so a bad address fails
    // startup instead of leaving a half-working proxy. The main thread
    // keeps a duplicate of each socket for reloads.
    // Sockets another process hands over, or a service manager passed,
    // are used for the listeners with their addresses.
    let defer = config.timeouts.handshake;
    let mut sockets = Sockets::default();
    let mut admin = None;
    let mut control_socket = None;
    let mut taken = match &cli.takeover {
        Some(path) => Some(control::take_over(path, defer)?),
        None => None,
    };
    if let Some(taken) = &mut taken {
        for (configured, actual, shared, group) in taken.listeners.drain(..) {
            sockets.adopt(configured, actual, group, shared);
        }
        admin = taken.admin.take();
        control_socket = taken.control.take();
    }
    for passed in passed.listeners(defer) {
        info!(
            "socket activation: {:?} passed, listening on {}",
            passed.name, passed.addr
        );
        if config.admin == Some(passed.addr) {
            admin = Some(passed.socket);
        } else if config.listeners.iter().any(|l| l.addr == passed.addr) {
            let socket = mio::net::TcpListener::from_std(passed.socket);
            sockets.adopt(passed.addr, passed.addr, vec![socket], true);
        } else {
            warn!(
                "a passed socket ({:?}) listens on {}, which the configuration does not: \
                 closing it",
                passed.name, passed.addr
            );
        }
    }
    let assigned = sockets.assign(&config, config.workers, defer)?;
    let per_worker = assigned.per_worker;
    let listening = assigned.addrs;
    let sockets = Arc::new(Mutex::new(sockets));
    // Registered before any worker runs, so no signal is missed.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;

    // The admin listener too, before anything starts.
    let admin = match config.admin {
        Some(addr) => Some(
            match admin.filter(|a| a.local_addr().is_ok_and(|actual| serves(addr, actual))) {
                Some(socket) => socket,
                None => std::net::TcpListener::bind(addr).map_err(|e| RunError::Admin(addr, e))?,
            },
        ),
        None => None,
    };
    let control_socket = match &config.control_socket {
        Some(path) => Some(match control_socket.filter(|c| c.path() == path) {
            Some(socket) => socket,
            None => ControlSocket::bind(path).map_err(|e| RunError::Control(path.clone(), e))?,
        }),
        None => None,
    };
    let control = Control::new();
    let shards: Vec<_> = (0..config.workers).map(|_| Shard::new()).collect();
    let access = access_log::open(&config.access_log)
        .map_err(|e| RunError::AccessLog(config.access_log.clone(), e))?;
    let (finished_tx, finished_rx) = mpsc::channel();
    let mut wakers = Vec::new();
    let mut commands = Vec::new();
    let mut threads = Vec::new();
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let (tx, reloads) = mpsc::channel();
        let (mut worker, waker) = Worker::new(
            id,
            listeners,
            Arc::clone(&config),
            Arc::clone(&control),
            Arc::clone(&shards[id]),
            Sink::new(access.clone(), config.access_log_format),
            reloads,
        )?;
        commands.push((tx, Arc::clone(&waker)));
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
    if let Some((before, after)) = nofile {
        let level = if after < LOW_NOFILE {
            Level::Warn
        } else {
            Level::Info
        };
        log::write(
            level,
            format_args!(
                "open-file limit {after}{}: room for {}{}",
                if before < after {
                    format!(" (raised from {before})")
                } else {
                    String::new()
                },
                log::count(config.limits.max_connections, "connection"),
                if after < LOW_NOFILE {
                    "; raise the hard limit for more (ulimit -Hn, systemd LimitNOFILE=)"
                } else {
                    ""
                }
            ),
        );
    }
    // Startup lines print at any log level: scripts that ask for port 0
    // learn the real one from them.
    for addr in &listening {
        log::write(Level::Info, format_args!("listening on {addr}"));
    }
    let current = Arc::new(Mutex::new(Arc::clone(&config)));
    // The ACME thread follows the configuration in force; with a file, a
    // reload may add an `acme` table to one that had none.
    let acme = config
        .listeners
        .iter()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.acme().is_some()));
    if acme || cli.config.is_some() {
        wsproxy_fast::acme::spawn(Arc::clone(&current))?;
    }
    // With a file, whether or not it checks anything: a reload may add
    // checks to a file that had none. Quick mode has no checks.
    if cli.config.is_some() {
        wsproxy_fast::checker::spawn(Arc::clone(&current), commands.clone())?;
    }
    let mut admin_copy = None;
    let mut admin_waker = None;
    if let Some(admin) = admin {
        let addr = admin.local_addr()?;
        if control_socket.is_some() {
            admin_copy = Some(admin.try_clone()?);
        }
        let (server, waker) = Admin::new(admin)?;
        admin_waker = Some(waker);
        let config = Arc::clone(&current);
        let control = Arc::clone(&control);
        thread::Builder::new()
            .name("admin".into())
            .spawn(move || server.serve(shards, config, control))?;
        log::write(
            Level::Info,
            format_args!("admin endpoints on http://{addr}/metrics, /status and /healthz"),
        );
    }
    log::write(
        Level::Info,
        format_args!(
            "wsproxy-fast {} ready: {}, {}",
            env!("CARGO_PKG_VERSION"),
            log::count(config.workers, "worker"),
            config.summary()
        ),
    );

    if let Some(taken) = &taken {
        match taken.confirm() {
            Ok(()) => control::log_taken(taken),
            Err(e) => warn!(
                "process {} did not say it stopped accepting ({e}): it may accept until it exits",
                taken.from
            ),
        }
    }
    drop(taken);
    let mut giving = None;
    if let Some(socket) = control_socket {
        let path = socket.path().display().to_string();
        let workers = commands.clone();
        let in_force = Arc::clone(&current);
        let control = Arc::clone(&control);
        let draining = Arc::clone(&control);
        let giver = Giver {
            sockets: Arc::clone(&sockets),
            admin: admin_copy,
            draining: Box::new(move || draining.draining.load(Ordering::Acquire)),
            stop: Box::new(move |pid| {
                control.handed_over.store(true, Ordering::Release);
                control.draining.store(true, Ordering::Release);
                if let Some(waker) = &admin_waker {
                    let _ = waker.wake();
                }
                let drain = in_force.lock().unwrap_or_else(|p| p.into_inner()).drain;
                info!(
                    "handed the listeners to process {pid}; draining: Close frames (1001) to \
                     every tunnel over {}, stopping within {}",
                    log::Rounded(drain.spread),
                    log::Rounded(drain.timeout)
                );
                if !drain_workers(&workers, drain, true) {
                    error!("a worker did not take the drain");
                }
            }),
        };
        giving = Some(
            thread::Builder::new()
                .name("control".into())
                .spawn(move || control::serve(socket, giver))?,
        );
        log::write(
            Level::Info,
            format_args!("control socket on {path} (--takeover {path} replaces this process)"),
        );
    }

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
    let reloaded = Arc::clone(&config);
    let in_force = Arc::clone(&current);
    let drain_control = Arc::clone(&control);
    // With a file, SIGHUP reloads all of it; in quick mode, certificates.
    let mut reloader = source.map(|source| Reloader {
        source,
        sockets: Arc::clone(&sockets),
        workers: commands.clone(),
        current,
    });
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let draining = drain_control.draining.load(Ordering::Acquire);
                if signal == SIGHUP {
                    match &mut reloader {
                        _ if draining => warn!("SIGHUP ignored: the proxy is draining"),
                        Some(reloader) => reloader.reload(),
                        None => reload_certificates(&reloaded),
                    }
                    continue;
                }
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                let drain = match in_force.lock() {
                    Ok(c) => c.drain,
                    Err(poisoned) => poisoned.into_inner().drain,
                };
                if draining || drain.timeout.is_zero() {
                    info!("{name} received; stopping now");
                    on_signal();
                    return;
                }
                // Said before the workers hear it: an idle worker drains at
                // once, and the process may end before a later line.
                info!(
                    "{name} received; draining: no new clients, Close frames (1001) to every \
                     tunnel over {}, stopping within {} ({name} again stops at once)",
                    log::Rounded(drain.spread),
                    log::Rounded(drain.timeout)
                );
                drain_control.draining.store(true, Ordering::Release);
                if !drain_workers(&commands, drain, false) {
                    error!("a worker did not take the drain; stopping");
                    on_signal();
                    return;
                }
            }
        })?;

    // Workers end only when told to stop or once drained; one that ends
    // otherwise has failed.
    let first = finished_rx
        .recv()
        .expect("worker threads hold senders until they end");
    let drained = control.draining.load(Ordering::Acquire);
    let mut failed = !control.stop.load(Ordering::Acquire) && !drained;
    if failed {
        error!("worker {first} stopped unexpectedly; stopping the others");
    }
    if !drained {
        stop();
    }
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
    // Its last words to the process that took over.
    if control.handed_over.load(Ordering::Acquire) {
        if let Some(giving) = giving {
            let _ = giving.join();
        }
    }
    if failed {
        return Err(RunError::WorkerFailed);
    }
    info!("stopped");
    Ok(())
}

//! The ACME thread: for every certificate the configuration in force
//! asks for, it reads what storage holds, orders when there is none or it
//! is two thirds through its life, retries a failure with exponential
//! backoff (or as a rate limit's `Retry-After` says), keeps the result in
//! storage and swaps it into the listeners through the same path as a
//! SIGHUP certificate reload: new handshakes get it, live connections keep
//! theirs. Nothing here runs on a worker.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::challenge::{Outcome, REGISTRY};
use super::client::{Account, AcmeError};
use super::http::Http;
use super::jws::AccountKey;
use super::store::{self, Validity};
use super::AcmeSettings;
use crate::config::Config;
use crate::log::Rounded;
use crate::{error, info, warn};

/// The first retry after a failed order; doubled after each further
/// failure up to [`MAX_RETRY`]. Let's Encrypt allows 5 failed validations
/// per name an hour: 10 s, 20 s, 40 s, 80 s, 160 s and 320 s spend them
/// in about ten minutes and then slow down.
const FIRST_RETRY: Duration = Duration::from_secs(10);

/// The longest wait between two attempts.
const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

/// The first retry when the CA could not be reached at all (no order was
/// made, so no CA limit was spent); doubled likewise.
const FIRST_RETRY_UNREACHED: Duration = Duration::from_secs(1);

/// How often the configuration in force is looked at for certificates a
/// reload added, while nothing is due.
const CONFIG_POLL: Duration = Duration::from_secs(5);

/// Never renew sooner than this after a certificate was issued, however
/// short-lived it is (a CA issuing certificates of seconds would otherwise
/// be asked again at once).
const MIN_RENEW_WAIT: Duration = Duration::from_secs(1);

/// One certificate the thread looks after.
#[derive(Debug)]
struct Managed {
    settings: AcmeSettings,
    /// When to order next.
    due: SystemTime,
    /// Orders the CA refused or failed since the last success.
    failures: u32,
    /// Attempts since then that could not reach the CA at all.
    unreached: u32,
}

/// Starts the ACME thread. It follows the configuration in force, so a
/// reload that adds or removes an `acme` table is picked up.
pub fn spawn(current: Arc<Mutex<Arc<Config>>>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("acme".into())
        .spawn(move || run(&current))?;
    Ok(())
}

fn wanted(config: &Config) -> Vec<AcmeSettings> {
    let mut all: Vec<AcmeSettings> = Vec::new();
    for l in &config.listeners {
        if let Some(acme) = l.tls.as_ref().and_then(|t| t.acme()) {
            if !all.contains(acme) {
                all.push(acme.clone());
            }
        }
    }
    all
}

fn run(current: &Mutex<Arc<Config>>) {
    let mut managed: HashMap<(std::path::PathBuf, String, Vec<String>), Managed> = HashMap::new();
    loop {
        let config = Arc::clone(&current.lock().unwrap_or_else(PoisonError::into_inner));
        let wanted = wanted(&config);
        let key = |s: &AcmeSettings| (s.storage.clone(), s.directory.clone(), s.names.clone());
        managed.retain(|k, _| wanted.iter().any(|s| key(s) == *k));
        for settings in wanted {
            match managed.entry(key(&settings)) {
                // A reload may change the contact, challenge or CA file of
                // a certificate it keeps: the next order uses them.
                Entry::Occupied(mut kept) => kept.get_mut().settings = settings,
                Entry::Vacant(new) => {
                    new.insert(Managed {
                        due: inspect(&settings),
                        settings,
                        failures: 0,
                        unreached: 0,
                    });
                }
            }
        }
        let now = SystemTime::now();
        for m in managed.values_mut() {
            if m.due <= now {
                attempt(m, current);
            }
        }
        let now = SystemTime::now();
        let next = managed
            .values()
            .map(|m| m.due.duration_since(now).unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(CONFIG_POLL)
            .min(CONFIG_POLL);
        drop(config);
        thread::sleep(next);
    }
}

/// What storage holds for `settings`, said in the log; when to order.
fn inspect(settings: &AcmeSettings) -> SystemTime {
    let now = SystemTime::now();
    let files = settings.files();
    match store::read_leaf(&files.cert) {
        Ok((validity, names)) => {
            let missing: Vec<&String> = settings
                .names
                .iter()
                .filter(|n| !names.contains(n))
                .collect();
            REGISTRY.set_expiry(&names, store::unix_seconds(validity.not_after));
            if !missing.is_empty() {
                info!(
                    "ACME: the stored certificate {} lacks {}; ordering one for {}",
                    files.cert.display(),
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    settings.describe()
                );
                return now;
            }
            let renew = validity.renew_at();
            if renew <= now {
                info!(
                    "ACME: the stored certificate for {} (serial {}) is due for renewal; ordering",
                    settings.describe(),
                    validity.serial
                );
                return now;
            }
            info!(
                "ACME: using the stored certificate for {} (serial {}, expires in {}); renewal in {}",
                settings.describe(),
                validity.serial,
                Rounded(validity.expires_in(now)),
                Rounded(renew.duration_since(now).unwrap_or(Duration::ZERO))
            );
            renew
        }
        Err(reason) => {
            if files.cert.exists() {
                warn!(
                    "ACME: {}: unusable ({reason}); ordering a new certificate for {}",
                    files.cert.display(),
                    settings.describe()
                );
            }
            info!(
                "ACME: no certificate yet for {}: a self-signed placeholder answers TLS \
                 handshakes until {} issues one ({} challenge)",
                settings.describe(),
                settings.directory,
                settings.challenge.name()
            );
            now
        }
    }
}

/// A failure and how to count it.
struct Failure {
    outcome: Outcome,
    /// Nothing reached the CA: retry sooner.
    unreached: bool,
    message: String,
    retry_after: Option<Duration>,
}

impl From<AcmeError> for Failure {
    fn from(e: AcmeError) -> Failure {
        let outcome = match &e {
            _ if e.rate_limited() => Outcome::RateLimited,
            AcmeError::Unreached(_) => Outcome::Unreached,
            AcmeError::Challenge { .. } => Outcome::Invalid,
            _ => Outcome::Failed,
        };
        let message = if e.rate_limited() {
            format!("rate-limited by the CA: {e}")
        } else {
            e.to_string()
        };
        Failure {
            unreached: matches!(e, AcmeError::Unreached(_)),
            outcome,
            message,
            retry_after: e.retry_after(),
        }
    }
}

fn failure(message: String) -> Failure {
    Failure {
        outcome: Outcome::Failed,
        unreached: false,
        message,
        retry_after: None,
    }
}

fn attempt(m: &mut Managed, current: &Mutex<Arc<Config>>) {
    info!(
        "ACME: ordering a certificate for {} from {} ({} challenge)",
        m.settings.describe(),
        m.settings.directory,
        m.settings.challenge.name()
    );
    match obtain(&m.settings) {
        Ok(validity) => {
            REGISTRY.count(Outcome::Issued);
            REGISTRY.set_expiry(&m.settings.names, store::unix_seconds(validity.not_after));
            let now = SystemTime::now();
            let renew = validity.renew_at().max(now + MIN_RENEW_WAIT);
            m.due = renew;
            m.failures = 0;
            m.unreached = 0;
            // The configuration in force now: a reload during the order
            // made listeners that may have read storage before it changed.
            let config = Arc::clone(&current.lock().unwrap_or_else(PoisonError::into_inner));
            let swapped = swap_in(&m.settings, &config);
            info!(
                "ACME: certificate for {} issued (serial {}, expires in {}), serving it on {}; renewal in {}",
                m.settings.describe(),
                validity.serial,
                Rounded(validity.expires_in(now)),
                crate::log::count(swapped, "listener"),
                Rounded(renew.duration_since(now).unwrap_or(Duration::ZERO))
            );
        }
        Err(f) => {
            REGISTRY.count(f.outcome);
            let (first, streak) = if f.unreached {
                m.unreached += 1;
                (FIRST_RETRY_UNREACHED, m.unreached)
            } else {
                m.failures += 1;
                (FIRST_RETRY, m.failures)
            };
            let backoff = first
                .saturating_mul(1 << (streak - 1).min(16))
                .min(MAX_RETRY);
            let wait = f.retry_after.map_or(backoff, |r| r.max(backoff));
            m.due = SystemTime::now() + wait;
            error!(
                "ACME: order for {} failed: {}; retrying in {} (attempt {} failed)",
                m.settings.describe(),
                f.message,
                Rounded(wait),
                m.failures + m.unreached
            );
        }
    }
}

/// Every listener of the configuration in force that serves `settings`
/// re-reads its certificates: the SIGHUP path. How many did.
fn swap_in(settings: &AcmeSettings, config: &Config) -> usize {
    let mut swapped = 0;
    for l in &config.listeners {
        let Some(tls) = &l.tls else { continue };
        // The same storage files, whatever else a reload changed meanwhile.
        if tls.acme().map(AcmeSettings::files) != Some(settings.files()) {
            continue;
        }
        match tls.reload() {
            Ok(_) => swapped += 1,
            Err(e) => error!(
                "ACME: listener {}: cannot load the new certificate: {e}; it keeps the one it had",
                l.addr
            ),
        }
    }
    swapped
}

/// One order, start to finish: the account, the challenges, the chain
/// kept in storage. Its validity.
fn obtain(settings: &AcmeSettings) -> Result<Validity, Failure> {
    let files = settings.files();
    let dir = files.cert.parent().unwrap_or(&settings.storage);
    store::create_dir(&settings.storage)
        .and_then(|()| store::create_dir(dir))
        .map_err(|e| {
            failure(format!(
                "storage {} not writable: {e}; give the proxy's user a directory it owns",
                dir.display()
            ))
        })?;
    let key = account_key(settings)?;
    let http = Http::new(settings.ca.as_deref()).map_err(failure)?;
    let mut account = Account::open(http, &settings.directory, key, &settings.contact)?;
    let cert_key = KeyPair::generate().map_err(|e| failure(e.to_string()))?;
    let csr = CertificateParams::new(settings.names.clone())
        .and_then(|p| p.serialize_request(&cert_key))
        .map_err(|e| failure(format!("cannot make the certificate request: {e}")))?;
    let chain = account.order(&settings.names, settings.challenge, csr.der(), &*REGISTRY)?;
    let leaf = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| failure("the CA's certificate chain holds no certificate".into()))?;
    let (validity, _) =
        store::leaf_of(&leaf).map_err(|e| failure(format!("the CA's certificate: {e}")))?;
    let written = store::write_key(&files.key, &cert_key.serialize_pem())
        .and_then(|()| store::write_chain(&files.cert, &chain));
    written.map_err(|e| {
        failure(format!(
            "storage {} not writable: {e}; the new certificate is lost",
            dir.display()
        ))
    })?;
    Ok(validity)
}

/// The account key in storage, made and kept there the first time.
fn account_key(settings: &AcmeSettings) -> Result<AccountKey, Failure> {
    let path = store::account_key_path(&settings.storage);
    match std::fs::read_to_string(&path) {
        Ok(pem) => AccountKey::from_pem(&pem).map_err(|e| {
            failure(format!(
                "{}: {e}; move it away to start a new account",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = AccountKey::generate().map_err(failure)?;
            store::write_key(&path, key.pem()).map_err(|e| {
                failure(format!(
                    "storage {} not writable: {e}",
                    settings.storage.display()
                ))
            })?;
            info!("ACME: new account key in {}", path.display());
            Ok(key)
        }
        Err(e) => Err(failure(format!("{}: cannot read: {e}", path.display()))),
    }
}

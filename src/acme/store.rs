//! What ACME keeps on disk, in the `storage` directory (created 0700):
//!
//! ```text
//! STORAGE/account.key                   the account key (PKCS#8 PEM, 0600)
//! STORAGE/CA/FIRST-NAME/cert.pem        the chain the CA issued, leaf first
//! STORAGE/CA/FIRST-NAME/key.pem         its private key (0600)
//! ```
//!
//! `CA` is the directory URL's host and port (`acme-v02.api.letsencrypt.org`,
//! `127.0.0.1_14000`), so a staging certificate is never served as a
//! production one. Files are replaced by writing a temporary file and
//! renaming it, so a reader sees the old file or the new one, whole.
//! Also here: a certificate's validity and serial, read from its DER.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The storage directory's mode: only the proxy's user reads keys.
const DIR_MODE: u32 = 0o700;
/// Private keys' mode.
const KEY_MODE: u32 = 0o600;

/// Where one certificate's chain and key live.
pub fn cert_dir(storage: &Path, directory_url: &str, first_name: &str) -> PathBuf {
    let authority = directory_url
        .split_once("://")
        .map_or(directory_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
                _ => '_',
            })
            .collect()
    };
    storage.join(safe(authority)).join(safe(first_name))
}

pub fn account_key_path(storage: &Path) -> PathBuf {
    storage.join("account.key")
}

/// Creates `dir` and its parents, each new one 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    // The builder's mode passes through the umask; the storage must not.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Replaces `path` with `bytes`: a temporary file beside it (mode `mode`),
/// synced, then renamed over it.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

pub fn write_key(path: &Path, pem: &str) -> io::Result<()> {
    replace(path, pem.as_bytes(), KEY_MODE)
}

pub fn write_chain(path: &Path, pem: &str) -> io::Result<()> {
    replace(path, pem.as_bytes(), 0o644)
}

/// What the proxy needs to know of a certificate it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The serial number, hex, as `openssl x509 -serial` prints it.
    pub serial: String,
}

impl Validity {
    /// When to renew: two thirds into the lifetime (Let's Encrypt's 90 days
    /// → 30 days before expiry, as certbot and Caddy do).
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        self.not_before + life * 2 / 3
    }

    pub fn expires_in(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or(Duration::ZERO)
    }
}

/// The leaf of a PEM chain file: its validity and DNS names.
pub fn read_leaf(path: &Path) -> Result<(Validity, Vec<String>), String> {
    let leaf = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no certificate in it")?
        .map_err(|e| e.to_string())?;
    leaf_of(&leaf)
}

/// A DER leaf certificate's validity and DNS names.
pub fn leaf_of(leaf: &CertificateDer<'_>) -> Result<(Validity, Vec<String>), String> {
    let validity = parse_validity(leaf).ok_or("malformed X.509 (validity)")?;
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    let names = cert
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    Ok((validity, names))
}

/// One DER element at the start of `der`: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..octets] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[octets..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT Version` (RFC 5280 §4.1).
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// RFC 5280 §4.1: Certificate → tbsCertificate → (version), serialNumber,
/// signature, issuer, validity.
fn parse_validity(der: &[u8]) -> Option<Validity> {
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (mut tag, mut contents, mut next) = element(rest)?;
    if tag == VERSION {
        rest = next;
        (tag, contents, next) = element(rest)?;
    }
    if tag != INTEGER {
        return None;
    }
    let serial = serial_hex(contents);
    let (_, _, after_signature) = element(next)?;
    let (_, _, after_issuer) = element(after_signature)?;
    let (SEQUENCE, times, _) = element(after_issuer)? else {
        return None;
    };
    let (tag, before, rest) = element(times)?;
    let not_before = time(tag, before)?;
    let (tag, after, _) = element(rest)?;
    let not_after = time(tag, after)?;
    Some(Validity {
        not_before,
        not_after,
        serial,
    })
}

fn serial_hex(bytes: &[u8]) -> String {
    // A leading zero only keeps a positive INTEGER positive.
    let bytes = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => bytes,
    };
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// UTCTime "YYMMDDHHMMSSZ" (years 1950–2049) or GeneralizedTime
/// "YYYYMMDDHHMMSSZ", as RFC 5280 §4.1.2.5 allows them.
fn time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 12 => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        for (y, m, d, want) in [
            (1970, 1, 1, 0),
            (2000, 3, 1, 11_017),
            (2026, 12, 6, 20_793),
            (2049, 12, 31, 29_219),
        ] {
            assert_eq!(days_from_civil(y, m, d), want, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn reads_validity_and_serial_of_a_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["v.test".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2051, 3, 4);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x8a, 0x01]));
        let cert = params.self_signed(&key).unwrap();
        let (validity, names) = leaf_of(cert.der()).unwrap();
        assert_eq!(names, ["v.test"]);
        assert_eq!(validity.serial, "8A01");
        let day =
            |y, m, d| UNIX_EPOCH + Duration::from_secs(days_from_civil(y, m, d) as u64 * 86_400);
        // UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280).
        assert_eq!(validity.not_before, day(2026, 1, 2));
        assert_eq!(validity.not_after, day(2051, 3, 4));
        let life = validity
            .not_after
            .duration_since(validity.not_before)
            .unwrap();
        assert_eq!(validity.renew_at(), validity.not_before + life * 2 / 3);
        assert!(parse_validity(b"\x30\x03\x02\x01").is_none());
    }

    #[test]
    fn storage_modes() {
        let base = std::env::temp_dir().join(format!("wsproxy-acme-store-{}", std::process::id()));
        let dir = base.join("a").join("b");
        create_dir(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let key = dir.join("key.pem");
        write_key(&key, "secret").unwrap();
        assert_eq!(mode(&key), 0o600);
        write_key(&key, "again").unwrap();
        assert_eq!(fs::read_to_string(&key).unwrap(), "again");
        assert_eq!(
            cert_dir(Path::new("/s"), "https://127.0.0.1:14000/dir", "a.test"),
            Path::new("/s/127.0.0.1_14000/a.test")
        );
        fs::remove_dir_all(&base).unwrap();
    }
}

//! The ACME protocol (RFC 8555) from the client's side, blocking: the
//! directory, nonces, the account, and one order from identifiers to a
//! certificate chain. Challenge answers are handed to [`Respond`], which
//! the proxy's workers read them from.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{Http, Response};
use super::jws::{base64url, AccountKey};

/// How long an order may take from the first challenge to the chain.
const ORDER_DEADLINE: Duration = Duration::from_secs(120);

/// First poll of a pending authorization or order; doubled each time.
const FIRST_POLL: Duration = Duration::from_millis(250);

/// Longest wait between two polls (a `Retry-After` may say otherwise).
const MAX_POLL: Duration = Duration::from_secs(5);

/// Fresh nonces tried when the CA says `badNonce` (RFC 8555 §6.5).
const NONCE_RETRIES: usize = 5;

/// Which challenge the proxy answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// RFC 8737: a certificate on the TLS listener for ALPN `acme-tls/1`.
    TlsAlpn01,
    /// RFC 8555 §8.3: `/.well-known/acme-challenge/TOKEN` on port 80.
    Http01,
}

impl ChallengeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Http01 => "http-01",
        }
    }
}

/// Why an order did not end with a certificate.
#[derive(Debug)]
pub enum AcmeError {
    /// The CA answered with a problem document (RFC 8555 §6.7).
    Ca {
        /// e.g. "urn:ietf:params:acme:error:rateLimited".
        kind: String,
        detail: String,
        /// What `Retry-After` said, if anything.
        retry_after: Option<Duration>,
    },
    /// A challenge was refused: the CA's reason for that name.
    Challenge {
        name: String,
        kind: String,
        detail: String,
    },
    /// The CA's directory could not be fetched (not listening, no route,
    /// TLS refused): nothing was asked of it.
    Unreached(String),
    /// Talking to the CA failed (connection, TLS, a malformed answer).
    Transport(String),
}

impl AcmeError {
    /// The CA limits how often this account or name may order.
    pub fn rate_limited(&self) -> bool {
        matches!(self, AcmeError::Ca { kind, .. } if kind.ends_with(":rateLimited"))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AcmeError::Ca { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |kind: &str| kind.rsplit(':').next().unwrap_or("").to_owned();
        match self {
            AcmeError::Ca { kind, detail, .. } => {
                write!(f, "the CA refused: {detail} ({})", short(kind))
            }
            AcmeError::Challenge { name, kind, detail } => write!(
                f,
                "the CA could not validate {name}: {detail} ({})",
                short(kind)
            ),
            AcmeError::Unreached(e) => write!(f, "cannot reach the CA: {e}"),
            AcmeError::Transport(e) => write!(f, "cannot talk to the CA: {e}"),
        }
    }
}

fn transport(e: impl std::fmt::Display) -> AcmeError {
    AcmeError::Transport(e.to_string())
}

/// Where the challenge answers go while an order waits for them.
pub trait Respond {
    /// Serve `key_authorization` for `token` (HTTP-01), or a certificate
    /// for `name` built from it (TLS-ALPN-01).
    fn publish(
        &self,
        kind: ChallengeKind,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String>;
    /// Stop serving it.
    fn withdraw(&self, kind: ChallengeKind, name: &str, token: &str);
}

/// A CA directory's endpoints (RFC 8555 §7.1.1).
#[derive(Debug)]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// An account at one CA, ready to order.
#[derive(Debug)]
pub struct Account {
    http: Http,
    key: AccountKey,
    directory: Directory,
    kid: String,
    nonce: Option<String>,
}

impl Account {
    /// Finds or creates the account for `key` at the CA whose directory is
    /// `url` (agreeing to its terms of service, as certbot's
    /// `--agree-tos` does).
    pub fn open(
        http: Http,
        url: &str,
        key: AccountKey,
        contact: &[String],
    ) -> Result<Account, AcmeError> {
        let answer = http
            .request("GET", url, None)
            .map_err(AcmeError::Unreached)?;
        if answer.status != 200 {
            return Err(problem(&answer));
        }
        let dir: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| transport(format!("{url}: not a directory: {e}")))?;
        let endpoint = |name: &str| {
            dir[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| transport(format!("{url}: the directory has no {name}")))
        };
        let directory = Directory {
            new_nonce: endpoint("newNonce")?,
            new_account: endpoint("newAccount")?,
            new_order: endpoint("newOrder")?,
        };
        let mut account = Account {
            http,
            key,
            directory,
            kid: String::new(),
            nonce: None,
        };
        let mut payload = json!({ "termsOfServiceAgreed": true });
        if !contact.is_empty() {
            payload["contact"] = json!(contact);
        }
        let url = account.directory.new_account.clone();
        let answer = account.post(&url, Some(&payload))?;
        account.kid = answer
            .field("location")
            .ok_or_else(|| transport("the CA gave the account no URL (Location)"))?
            .to_owned();
        Ok(account)
    }

    fn fresh_nonce(&mut self) -> Result<String, AcmeError> {
        if let Some(nonce) = self.nonce.take() {
            return Ok(nonce);
        }
        let answer = self
            .http
            .request("HEAD", &self.directory.new_nonce, None)
            .map_err(transport)?;
        answer
            .field("replay-nonce")
            .map(str::to_owned)
            .ok_or_else(|| transport("the CA gave no Replay-Nonce"))
    }

    /// A signed POST (None: POST-as-GET); a problem document is an `Err`.
    fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, AcmeError> {
        let mut tries = 0;
        loop {
            let nonce = self.fresh_nonce()?;
            let kid = (!self.kid.is_empty()).then_some(self.kid.as_str());
            let body = self
                .key
                .sign(url, &nonce, kid, payload)
                .map_err(transport)?;
            let answer = self
                .http
                .request("POST", url, Some(&body))
                .map_err(transport)?;
            self.nonce = answer.field("replay-nonce").map(str::to_owned);
            if answer.status < 400 {
                return Ok(answer);
            }
            let error = problem(&answer);
            tries += 1;
            match &error {
                AcmeError::Ca { kind, .. }
                    if kind.ends_with(":badNonce") && tries < NONCE_RETRIES => {}
                _ => return Err(error),
            }
        }
    }

    fn post_json(&mut self, url: &str, payload: Option<&Value>) -> Result<Value, AcmeError> {
        let answer = self.post(url, payload)?;
        serde_json::from_slice(&answer.body).map_err(|e| transport(format!("{url}: not JSON: {e}")))
    }

    /// One order for `names`, each proved by `kind`, finalized with
    /// `csr_der`: the PEM chain the CA issued.
    pub fn order(
        &mut self,
        names: &[String],
        kind: ChallengeKind,
        csr_der: &[u8],
        respond: &dyn Respond,
    ) -> Result<String, AcmeError> {
        let deadline = Instant::now() + ORDER_DEADLINE;
        let identifiers: Vec<Value> = names
            .iter()
            .map(|n| json!({ "type": "dns", "value": n }))
            .collect();
        let url = self.directory.new_order.clone();
        let answer = self.post(&url, Some(&json!({ "identifiers": identifiers })))?;
        let order_url = answer
            .field("location")
            .ok_or_else(|| transport("the CA gave the order no URL (Location)"))?
            .to_owned();
        let order: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| transport(format!("order: not JSON: {e}")))?;
        let authorizations: Vec<String> = order["authorizations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let finalize = order["finalize"]
            .as_str()
            .ok_or_else(|| transport("the order has no finalize URL"))?
            .to_owned();
        for authz in authorizations {
            self.authorize(&authz, kind, respond, deadline)?;
        }
        let order = self.poll(&order_url, &["ready", "valid"], deadline)?;
        let order = if order["status"] == "ready" {
            self.post_json(&finalize, Some(&json!({ "csr": base64url(csr_der) })))?;
            self.poll(&order_url, &["valid"], deadline)?
        } else {
            order
        };
        let certificate = order["certificate"]
            .as_str()
            .ok_or_else(|| transport("the valid order has no certificate URL"))?
            .to_owned();
        let answer = self.post(&certificate, None)?;
        String::from_utf8(answer.body).map_err(|_| transport("the certificate is not PEM text"))
    }

    /// Proves one authorization, unless the CA already holds it valid.
    fn authorize(
        &mut self,
        url: &str,
        kind: ChallengeKind,
        respond: &dyn Respond,
        deadline: Instant,
    ) -> Result<(), AcmeError> {
        let authz = self.post_json(url, None)?;
        let name = authz["identifier"]["value"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        if authz["status"] == "valid" {
            return Ok(());
        }
        let challenge = authz["challenges"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["type"] == kind.name()))
            .ok_or_else(|| AcmeError::Challenge {
                name: name.clone(),
                kind: "unsupportedChallenge".into(),
                detail: format!("the CA offers no {} challenge for it", kind.name()),
            })?;
        let token = challenge["token"]
            .as_str()
            .ok_or_else(|| transport("a challenge without a token"))?
            .to_owned();
        let challenge_url = challenge["url"]
            .as_str()
            .ok_or_else(|| transport("a challenge without a URL"))?
            .to_owned();
        let key_authorization = self.key.key_authorization(&token);
        respond
            .publish(kind, &name, &token, &key_authorization)
            .map_err(transport)?;
        let result = self
            .post_json(&challenge_url, Some(&json!({})))
            .and_then(|_| self.poll(url, &["valid"], deadline));
        respond.withdraw(kind, &name, &token);
        match result {
            Ok(_) => Ok(()),
            Err(AcmeError::Ca {
                kind: k, detail, ..
            }) if k == "invalid" => Err(AcmeError::Challenge {
                name,
                kind: "invalid".into(),
                detail,
            }),
            Err(AcmeError::Challenge {
                kind: k, detail, ..
            }) => Err(AcmeError::Challenge {
                name,
                kind: k,
                detail,
            }),
            Err(e) => Err(e),
        }
    }

    /// POST-as-GET `url` until its status is one of `done`; "invalid" (or
    /// the deadline) is an error carrying the CA's reason.
    fn poll(&mut self, url: &str, done: &[&str], deadline: Instant) -> Result<Value, AcmeError> {
        let mut wait = FIRST_POLL;
        loop {
            let answer = self.post(url, None)?;
            let value: Value = serde_json::from_slice(&answer.body)
                .map_err(|e| transport(format!("{url}: not JSON: {e}")))?;
            let status = value["status"].as_str().unwrap_or("");
            if done.contains(&status) {
                return Ok(value);
            }
            if status == "invalid" {
                return Err(reason_of(&value));
            }
            let after = retry_after(&answer).unwrap_or(wait).min(MAX_POLL);
            if Instant::now() + after > deadline {
                return Err(transport(format!(
                    "{url} still {status:?} after {}s",
                    ORDER_DEADLINE.as_secs()
                )));
            }
            thread::sleep(after);
            wait = (wait * 2).min(MAX_POLL);
        }
    }
}

/// Why an authorization or order is invalid: a failed challenge's error
/// (RFC 8555 §7.1.4), or the order's own.
fn reason_of(value: &Value) -> AcmeError {
    let failed = value["challenges"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["error"].is_object()))
        .map(|c| &c["error"]);
    let error = failed.unwrap_or(&value["error"]);
    match error["detail"].as_str() {
        Some(detail) => AcmeError::Challenge {
            name: value["identifier"]["value"].as_str().unwrap_or("?").into(),
            kind: error["type"].as_str().unwrap_or("invalid").into(),
            detail: detail.into(),
        },
        None => AcmeError::Ca {
            kind: "invalid".into(),
            detail: "the CA marked it invalid and gave no reason".into(),
            retry_after: None,
        },
    }
}

fn retry_after(answer: &Response) -> Option<Duration> {
    answer
        .field("retry-after")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
}

/// The problem document an error answer carries.
fn problem(answer: &Response) -> AcmeError {
    let doc: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    AcmeError::Ca {
        kind: doc["type"].as_str().unwrap_or("").to_owned(),
        detail: doc["detail"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", answer.status)),
        retry_after: retry_after(answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_challenge_error() {
        let authz = json!({
            "status": "invalid",
            "identifier": { "type": "dns", "value": "a.test" },
            "challenges": [
                { "type": "http-01", "status": "pending" },
                { "type": "tls-alpn-01", "status": "invalid",
                  "error": { "type": "urn:ietf:params:acme:error:connection",
                             "detail": "connection refused" } }
            ]
        });
        let e = reason_of(&authz).to_string();
        assert_eq!(
            e,
            "the CA could not validate a.test: connection refused (connection)"
        );
        let bare = reason_of(&json!({ "status": "invalid" })).to_string();
        assert!(bare.contains("gave no reason"), "{bare}");
        let limited = AcmeError::Ca {
            kind: "urn:ietf:params:acme:error:rateLimited".into(),
            detail: "too many certificates".into(),
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert!(limited.rate_limited());
        assert_eq!(
            limited.to_string(),
            "the CA refused: too many certificates (rateLimited)"
        );
    }
}

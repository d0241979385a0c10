//! The ACME account key and what it signs: an ECDSA P-256 key, its JWK
//! (RFC 7517) and thumbprint (RFC 7638), and flattened JWS objects with
//! ES256 signatures (RFC 7515, as RFC 8555 §6.2 requires them).

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// base64url without padding (RFC 7515 §2), as every JWS part is written.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // One output character per 6 input bits, and no padding.
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// An account key: ECDSA P-256, signing with ES256.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    /// PKCS#8 PEM, as kept in storage.
    pem: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

impl AccountKey {
    /// A new random key.
    pub fn generate() -> Result<AccountKey, String> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| format!("cannot generate an account key: {e}"))?;
        AccountKey::from_pem(&key.serialize_pem())
    }

    /// A key kept in storage (PKCS#8 PEM, P-256).
    pub fn from_pem(pem: &str) -> Result<AccountKey, String> {
        let key = KeyPair::from_pem(pem).map_err(|e| format!("not a PEM private key: {e}"))?;
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
                .map_err(|e| format!("not an ECDSA P-256 key: {e}"))?;
        Ok(AccountKey {
            pair,
            pem: pem.to_owned(),
            rng,
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The public key as a JWK, members in the lexicographic order RFC
    /// 7638 §3.3 hashes them in.
    pub fn jwk(&self) -> Value {
        // SEC 1 uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = self.pair.public_key().as_ref();
        json!({
            "crv": "P-256",
            "kty": "EC",
            "x": base64url(&point[1..33]),
            "y": base64url(&point[33..65]),
        })
    }

    /// RFC 7638 thumbprint, base64url: the second half of every key
    /// authorization (RFC 8555 §8.1).
    pub fn thumbprint(&self) -> String {
        // serde_json writes object members sorted (no preserve_order), with
        // no whitespace: exactly RFC 7638's required form.
        base64url(&sha256(self.jwk().to_string().as_bytes()))
    }

    /// `token.thumbprint` (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// A flattened JWS of `payload` (None: the empty payload of a
    /// POST-as-GET, RFC 8555 §6.3) for `url`, naming the key by `kid` or,
    /// before the account exists, by its JWK.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Vec<u8>, String> {
        let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match kid {
            Some(kid) => protected["kid"] = Value::from(kid),
            None => protected["jwk"] = self.jwk(),
        }
        let protected = base64url(protected.to_string().as_bytes());
        let payload = payload.map_or(String::new(), |p| base64url(p.to_string().as_bytes()));
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| "ECDSA signing failed".to_string())?;
        let body = json!({
            "protected": protected,
            "payload": payload,
            "signature": base64url(signature.as_ref()),
        });
        Ok(body.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        // RFC 4648 §10, with the padding dropped (RFC 7515 §2).
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff], "-_8"),
        ];
        for (input, want) in cases {
            assert_eq!(base64url(input), *want, "{input:?}");
        }
    }

    #[test]
    fn signature_verifies_and_key_round_trips() {
        let key = AccountKey::generate().unwrap();
        let again = AccountKey::from_pem(key.pem()).unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        let jws: Value = serde_json::from_slice(
            &key.sign("https://ca/x", "n1", None, Some(&json!({})))
                .unwrap(),
        )
        .unwrap();
        let input = format!(
            "{}.{}",
            jws["protected"].as_str().unwrap(),
            jws["payload"].as_str().unwrap()
        );
        let signature = decode(jws["signature"].as_str().unwrap());
        assert_eq!(signature.len(), 64, "ES256 is r || s, 32 bytes each");
        let public = key.pair.public_key().as_ref().to_vec();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public)
            .verify(input.as_bytes(), &signature)
            .unwrap();
        let protected: Value =
            serde_json::from_slice(&decode(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["jwk"]["crv"], "P-256");
        let get = key.sign("https://ca/y", "n2", Some("kid"), None).unwrap();
        let get: Value = serde_json::from_slice(&get).unwrap();
        assert_eq!(get["payload"], "", "POST-as-GET has an empty payload");
    }

    fn decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in text.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }
}

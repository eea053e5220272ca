//! The sending end of the node-to-node protocol: signs and posts messages, a batch per
//! request, or one per request to a node that does not take batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::protocol::{
    BATCH_PATH, CONNECTION_HEADER, MAX_BATCH, MAX_BODY_BYTES, MESSAGE_ID_HEADER, MESSAGES_PATH,
    SIGNATURE_HEADER, TIMESTAMP_HEADER, sign,
};
use crate::config::Secret;
use crate::sync::{Receipt, SyncMessage};

/// The largest answer read from the other node.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Why a message was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The other node could not be reached or did not answer: try again later.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The other node answered with an error status.
    #[error("{url} answered {status}: {reason}")]
    Rejected {
        url: String,
        status: u16,
        reason: String,
    },
}

/// The roots a connection with a remote CA file trusts: the public roots (the same
/// Mozilla list ureq trusts by default) and the file's certificates, added to them.
fn trusted(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut added = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => added.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("the remote CA file is not valid PEM: {e}")),
        }
    }
    if added.is_empty() {
        return Err("no certificate in the remote CA file".into());
    }
    let public = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned());
    Ok(public.chain(added).collect())
}

impl SendError {
    /// The reason, when the other node refused this message for good: a 4xx about the
    /// message itself. 401 and 404 are about the connection (secret, name, clock), the same
    /// for every message, and 408, 409 and 429 pass: those leave the message queued.
    pub fn refused_for_good(&self) -> Option<&str> {
        match self {
            SendError::Rejected { status, reason, .. }
                if (400..500).contains(status) && ![401, 404, 408, 409, 429].contains(status) =>
            {
                Some(reason)
            }
            _ => None,
        }
    }
}

/// Posts messages of one connection to the other node.
pub struct Sender {
    agent: ureq::Agent,
    base_url: String,
    url: String,
    connection: String,
    secret: Secret,
    /// Whether the other node takes batches (until it answers that it does not).
    batches: AtomicBool,
}

impl Sender {
    /// `remote_url` is the other node's base URL; `remote_ca` PEM certificates are trusted
    /// for its TLS in addition to the public roots.
    pub fn new(
        connection: &str,
        remote_url: &str,
        secret: Secret,
        remote_ca: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false);
        if let Some(pem) = remote_ca {
            let certs =
                trusted(pem).map_err(|e| anyhow::anyhow!("connection `{connection}`: {e}"))?;
            config = config.tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let base_url = remote_url.trim_end_matches('/').to_string();
        Ok(Sender {
            agent: config.build().into(),
            url: format!("{base_url}{MESSAGES_PATH}"),
            base_url,
            connection: connection.to_string(),
            secret,
            batches: AtomicBool::new(true),
        })
    }

    /// Post `messages` (oldest first) in batches: one receipt, or the reason none came, per
    /// message, in order. `None` if the other node does not take batches (an older node):
    /// then each message is posted with [`Sender::send`].
    pub fn send_batches(
        &self,
        messages: &[SyncMessage],
        now: i64,
    ) -> Option<Vec<Result<Receipt, SendError>>> {
        if !self.batches.load(Ordering::Relaxed) {
            return None;
        }
        let url = self.batch_url();
        let mut results = Vec::with_capacity(messages.len());
        let mut rest = messages;
        while !rest.is_empty() {
            let (count, body) = next_batch(rest);
            let (chunk, later) = rest.split_at(count);
            rest = later;
            let error = match self.send_batch(chunk, &body, now) {
                Ok(Some(receipts)) => {
                    results.extend(receipts.into_iter().map(|r| receipt_result(r, &url)));
                    continue;
                }
                Ok(None) if results.is_empty() => {
                    self.batches.store(false, Ordering::Relaxed);
                    return None;
                }
                Ok(None) => SendError::Rejected {
                    url: url.clone(),
                    status: 404,
                    reason: "the other node stopped taking batches".into(),
                },
                Err(error) => error,
            };
            // The request as a whole failed: the same for its messages and the later ones,
            // and for none of them for good (a refusal of the whole batch is about the
            // batch, not about its first message): they stay queued and go again later.
            let reason = match error {
                SendError::Unreachable { reason, .. } => reason,
                rejected => rejected.to_string(),
            };
            let failed = chunk.len() + rest.len();
            results.extend((0..failed).map(|_| {
                Err(SendError::Unreachable {
                    url: url.clone(),
                    reason: reason.clone(),
                })
            }));
            break;
        }
        Some(results)
    }

    fn batch_url(&self) -> String {
        format!("{}{BATCH_PATH}", self.base_url)
    }

    /// Post a batch (`body` encodes `messages`): its receipts, or `None` if the other node
    /// has no batch route.
    fn send_batch(
        &self,
        messages: &[SyncMessage],
        body: &[u8],
        now: i64,
    ) -> Result<Option<Vec<Receipt>>, SendError> {
        let url = self.batch_url();
        let (status, text) = self.post(&url, BATCH_PATH, &messages[0].id, body, now)?;
        match status {
            200 => match serde_json::from_str::<Vec<Receipt>>(&text) {
                Ok(receipts) if receipts.len() == messages.len() => Ok(Some(receipts)),
                Ok(receipts) => Err(SendError::Rejected {
                    url,
                    status,
                    reason: format!(
                        "{} receipts for {} messages",
                        receipts.len(),
                        messages.len()
                    ),
                }),
                Err(e) => Err(SendError::Rejected {
                    url,
                    status,
                    reason: format!("unreadable answer ({e}): {text}"),
                }),
            },
            // No such route (an older node): axum's empty 404 or 405, not our JSON refusal
            // of an unknown connection.
            404 | 405 if error_reason(&text).is_none() => Ok(None),
            503 => Err(SendError::Unreachable { url, reason: text }),
            _ => Err(SendError::Rejected {
                url,
                status,
                reason: error_reason(&text).unwrap_or(text),
            }),
        }
    }

    /// Sign and post `body` to `url` (whose path is `path`); the status and the answer.
    fn post(
        &self,
        url: &str,
        path: &str,
        id: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(u16, String), SendError> {
        let timestamp = now.to_string();
        let signature = sign(&self.secret, "POST", path, &timestamp, id, body);
        let unreachable = |reason: String| SendError::Unreachable {
            url: url.to_string(),
            reason,
        };
        let mut response = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .header(CONNECTION_HEADER, &self.connection)
            .header(MESSAGE_ID_HEADER, id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, &signature)
            .send(body)
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        // An answer is receipts or a reason: a few kilobytes at most. More is not read.
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        Ok((status, text))
    }

    /// Post one message; `now` is the Unix time in seconds for the timestamp.
    pub fn send(&self, message: &SyncMessage, now: i64) -> Result<Receipt, SendError> {
        let body = serde_json::to_vec(message).expect("messages always encode");
        let (status, text) = self.post(&self.url, MESSAGES_PATH, &message.id, &body, now)?;
        match status {
            200 | 409 => serde_json::from_str(&text).map_err(|e| SendError::Rejected {
                url: self.url.clone(),
                status,
                reason: format!("unreadable answer ({e}): {text}"),
            }),
            503 => Err(SendError::Unreachable {
                url: self.url.clone(),
                reason: text,
            }),
            _ => Err(SendError::Rejected {
                url: self.url.clone(),
                status,
                reason: error_reason(&text).unwrap_or(text),
            }),
        }
    }
}

/// The next batch of `messages`: how many, and the request body. At most [`MAX_BATCH`], and
/// few enough that the body stays under the other node's limit (at least one: a single
/// message is always within it). Each message is encoded once.
fn next_batch(messages: &[SyncMessage]) -> (usize, Vec<u8>) {
    let mut body = b"[".to_vec();
    let mut count = 0;
    for message in messages.iter().take(MAX_BATCH) {
        let encoded = serde_json::to_vec(message).expect("messages always encode");
        if count > 0 && body.len() + encoded.len() + 2 > MAX_BODY_BYTES {
            break;
        }
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&encoded);
        count += 1;
    }
    body.push(b']');
    (count, body)
}

/// A receipt of a batch, as the single-message route would have answered it: a refusal
/// for good is an error with the reason, as a 422 or a 403 is there.
fn receipt_result(receipt: Receipt, url: &str) -> Result<Receipt, SendError> {
    match receipt {
        Receipt::Refused { reason } => Err(SendError::Rejected {
            url: url.to_string(),
            status: 422,
            reason,
        }),
        Receipt::Forbidden { reason } => Err(SendError::Rejected {
            url: url.to_string(),
            status: 403,
            reason,
        }),
        other => Ok(other),
    }
}

/// The reason in one of our JSON refusals (`{"error": ...}`).
fn error_reason(text: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operator's CA file (`tests/fixtures/tls/ca.pem`).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjDCCATOgAwIBAgIUYRds3ZqUieZi9FsT1SE9LozqtyEwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQdHdpbnN5bmMgdGVzdCBDQTAgFw0yNjExMzAwNzQyMzFaGA8y
MTI2MTEwNjA3NDIzMVowGzEZMBcGA1UEAwwQdHdpbnN5bmMgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABNQdctI+13Qm0/SmWqoPUo6Cav/QG//Tlh9z
ggm01b6bXbzrjTm7pfEPKFpkToKDWfCn8URDHHOTUxslQUbLdy6jUzBRMB0GA1Ud
DgQWBBT+GUGMcn2eaXsmEpJTuy0hABp6EDAfBgNVHSMEGDAWgBT+GUGMcn2eaXsm
EpJTuy0hABp6EDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCICiJ
og2Rp05x+CFgMWnZU6oke1hsWRl3q6CGdyRKEoErAiBXkKZLDhFw8Hrf8A6xOMSb
K/SZg7CMu0C9VCpsHvedDg==
-----END CERTIFICATE-----
";

    #[test]
    fn a_remote_ca_adds_to_the_public_roots() {
        let public = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(public.len() > 100, "the public roots are there");
        let trusted = trusted(CA.as_bytes()).unwrap();
        assert_eq!(trusted.len(), public.len() + 1);
        let ca = ureq::tls::parse_pem(CA.as_bytes()).next().unwrap().unwrap();
        let ureq::tls::PemItem::Certificate(ca) = ca else {
            panic!("a certificate")
        };
        assert!(trusted.iter().any(|c| c.der() == ca.der()));
        assert!(
            trusted.iter().any(|c| c.der() == public[0].as_ref()),
            "a public root"
        );
    }

    #[test]
    fn a_remote_ca_file_without_a_certificate_is_an_error() {
        assert_eq!(
            trusted(b"not pem").unwrap_err(),
            "no certificate in the remote CA file"
        );
    }
}

//! The sending end of the node-to-node protocol: signs and posts one message at a time.

use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::protocol::{
    CONNECTION_HEADER, MESSAGE_ID_HEADER, MESSAGES_PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign,
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
    url: String,
    connection: String,
    secret: Secret,
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
        Ok(Sender {
            agent: config.build().into(),
            url: format!("{}{MESSAGES_PATH}", remote_url.trim_end_matches('/')),
            connection: connection.to_string(),
            secret,
        })
    }

    /// Post one message; `now` is the Unix time in seconds for the timestamp.
    pub fn send(&self, message: &SyncMessage, now: i64) -> Result<Receipt, SendError> {
        let body = serde_json::to_vec(message).expect("messages always encode");
        let timestamp = now.to_string();
        let signature = sign(
            &self.secret,
            "POST",
            MESSAGES_PATH,
            &timestamp,
            &message.id,
            &body,
        );
        let unreachable = |reason: String| SendError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let mut response = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header(CONNECTION_HEADER, &self.connection)
            .header(MESSAGE_ID_HEADER, &message.id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, &signature)
            .send(&body[..])
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        // An answer is a receipt or a reason: a few hundred bytes. More is not read.
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        match status {
            200 | 409 => serde_json::from_str(&text).map_err(|e| SendError::Rejected {
                url: self.url.clone(),
                status,
                reason: format!("unreadable answer ({e}): {text}"),
            }),
            503 => Err(unreachable(text)),
            _ => Err(SendError::Rejected {
                url: self.url.clone(),
                status,
                reason: serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                    .unwrap_or(text),
            }),
        }
    }
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

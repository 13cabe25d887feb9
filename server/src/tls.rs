//! TLS for every endpoint: rustls with ALPN `h2` and `http/1.1`, from PEM files or a self-signed
//! certificate made at start (rcgen). Which protocol a client negotiated decides how its connection is
//! served (see `server`): HTTP/1.1 takes the direct path as cleartext does, h2 goes to hyper.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// ALPN identifiers, most preferred first: browsers take h2 when it is offered.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A PEM certificate chain and its PEM private key.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A certificate for `localhost` and `127.0.0.1`, made at start.
    SelfSigned,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate and key, or rcgen could not make them.
    #[error("{0}")]
    Setup(String),
}

/// A ready TLS acceptor and what a client needs to check the certificate.
#[derive(Clone)]
pub struct Tls {
    /// Accepts TLS connections with our certificate and ALPN list.
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, as colon-separated hex (what browsers show).
    pub fingerprint: String,
}

impl Tls {
    /// Loads or makes the certificate and builds the acceptor.
    pub fn new(source: &TlsSource) -> Result<Self, TlsError> {
        let (chain, key) = match source {
            TlsSource::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
            TlsSource::SelfSigned => self_signed()?,
        };
        let fingerprint = fingerprint(&chain[0]);
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
        })
    }
}

fn pem_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e))
}

/// A certificate for the loopback names, signed by its own key.
fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    Ok((vec![made.cert.der().clone()], key.into()))
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_offers_h2_then_http1() {
        let tls = Tls::new(&TlsSource::SelfSigned).unwrap();
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(
            tls.acceptor.config().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn unreadable_or_empty_pem_files_are_named() {
        let missing = TlsSource::Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let error = Tls::new(&missing).err().unwrap().to_string();
        assert!(error.starts_with("/nonexistent/cert.pem: "), "{error}");
        let empty =
            std::env::temp_dir().join(format!("pushbench-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "").unwrap();
        let error = read_chain(&empty).err().unwrap().to_string();
        std::fs::remove_file(&empty).unwrap();
        assert!(error.contains("no certificate"), "{error}");
    }
}

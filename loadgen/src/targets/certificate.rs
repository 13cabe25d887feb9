//! The certificate a run makes for the servers it spawns with `[client] tls = true`: self-signed (rcgen),
//! for `localhost` and the addresses a spawned server listens on (loopback, and the server side of an
//! emulated network), written as PEM files the server reads (`--tls-cert`, `--tls-key`), and which a
//! peer serves too (nginx reads them; Pushpin's condure gets copies in its certificates directory). The
//! clients trust exactly this certificate, in this process and in the workers (its PEM crosses the pipe).

use crate::error::RunError;
use crate::util::TempDir;

/// A certificate of the run, with its files.
#[derive(Debug)]
pub struct RunCertificate {
    /// The certificate, PEM: what the clients trust.
    pub cert_pem: String,
    dir: TempDir,
}

impl RunCertificate {
    /// The name the clients check: every certificate the run makes carries it.
    pub const SERVER_NAME: &str = "localhost";

    /// Makes a certificate and writes it and its key into a temporary directory of the run.
    pub fn new() -> Result<Self, RunError> {
        let failed =
            |e: &dyn std::fmt::Display| RunError::Tls(format!("making the run's certificate: {e}"));
        let names = [Self::SERVER_NAME, "127.0.0.1", "198.18.0.1"]
            .map(String::from)
            .to_vec();
        let made = rcgen::generate_simple_self_signed(names).map_err(|e| failed(&e))?;
        let dir = TempDir::new("tls").map_err(|e| failed(&e))?;
        let cert_pem = made.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).map_err(|e| failed(&e))?;
        std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem())
            .map_err(|e| failed(&e))?;
        Ok(Self { cert_pem, dir })
    }

    /// The certificate's PEM file.
    pub fn cert_file(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Its private key's PEM file.
    pub fn key_file(&self) -> std::path::PathBuf {
        self.dir.path().join("key.pem")
    }

    /// `pushbench-server` arguments that serve it.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert_file().display().to_string(),
            "--tls-key".into(),
            self.key_file().display().to_string(),
        ]
    }
}

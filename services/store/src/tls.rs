//! Client TLS for every HTTP connection sitetally makes (ClickHouse, webhooks, the schema
//! registry): rustls with the ring provider, trusting the webpki roots plus an optional
//! CA file, with an optional client certificate. It lives here, the lowest crate with
//! network I/O, so that the ClickHouse client and the reqwest clients share one setup.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where to find the certificates of a TLS client. All optional: by default the server
/// must present a certificate chaining to a webpki (Mozilla) root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    /// PEM file of CA certificates trusted besides the webpki roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers that ask for one (mutual TLS).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
}

/// A TLS setting that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS {what} {path}: cannot read: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("TLS {what} {path}: {problem}")]
    Invalid {
        what: &'static str,
        path: String,
        problem: String,
    },
    #[error("TLS: a client certificate needs both a certificate file and a key file")]
    HalfClientIdentity,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let invalid = |problem: String| TlsError::Invalid {
        what,
        path: path.display().to_string(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(certs)
}

impl TlsOptions {
    /// The rustls client configuration these options describe.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &self.ca_file {
            for cert in certificates("CA file", path)? {
                roots.add(cert).map_err(|e| TlsError::Invalid {
                    what: "CA file",
                    path: path.display().to_string(),
                    problem: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots);
        match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = certificates("client certificate", cert)?;
                let pem = read("client key", key)?;
                let invalid = |problem: String| TlsError::Invalid {
                    what: "client key",
                    path: key.display().to_string(),
                    problem,
                };
                let key_der = PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|e| invalid(format!("not a PEM private key: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| invalid(format!("does not fit the certificate: {e}")))
            }
            _ => Err(TlsError::HalfClientIdentity),
        }
    }
}

/// The whole chain of an error in one line. When any link is a TLS failure (an unknown
/// issuer, a name mismatch, a failed handshake), the line starts with "TLS:" so that a
/// wrong CA reads as what it is, not as "error sending request".
pub fn describe_error(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut tls = false;
    let mut link: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = link {
        tls |= holds_rustls_error(err);
        let text = err.to_string();
        if parts.last() != Some(&text) && !parts[0].contains(&text) {
            parts.push(text);
        }
        link = err.source();
    }
    let line = parts.join(": ");
    if tls {
        format!("TLS: {line}")
    } else {
        line
    }
}

/// Whether `e` is a rustls error, or io::Errors wrapping one (tokio-rustls wraps it in
/// `InvalidData`, the connector once more in `Other`; io::Error's `source` skips them).
fn holds_rustls_error(e: &(dyn StdError + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => holds_rustls_error(inner),
        None => false,
    }
}

/// Whether [`describe_error`] found a TLS failure: retrying will not fix it.
pub fn is_tls_failure(description: &str) -> bool {
    description.starts_with("TLS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = TlsOptions {
            ca_file: Some(missing.clone()),
            ..TlsOptions::default()
        }
        .client_config()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("TLS CA file ") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsOptions {
            ca_file: Some(empty),
            ..TlsOptions::default()
        }
        .client_config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = TlsOptions {
            client_cert_file: Some(missing),
            ..TlsOptions::default()
        }
        .client_config()
        .unwrap_err();
        assert!(matches!(e, TlsError::HalfClientIdentity));
    }

    #[test]
    fn a_private_ca_and_a_client_identity_load() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (ca_path, key_path) = (dir.path().join("ca.pem"), dir.path().join("key.pem"));
        std::fs::write(&ca_path, ca.cert.pem()).unwrap();
        std::fs::write(&key_path, ca.signing_key.serialize_pem()).unwrap();
        let opts = TlsOptions {
            ca_file: Some(ca_path.clone()),
            client_cert_file: Some(ca_path),
            client_key_file: Some(key_path),
        };
        let config = opts.client_config().unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }
}

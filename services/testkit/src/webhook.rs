//! A loopback HTTP receiver for webhook tests: records each request's headers and body and
//! answers with the next status of a script. [`tls_receiver`] serves the same over HTTPS
//! with a certificate from a test CA ([`TestCa`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// A running receiver on `127.0.0.1` (a free port), until the runtime stops.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Starts a receiver answering each request with the next status of `script` (the last
/// one repeats; an empty script answers 200).
pub async fn receiver(script: Vec<u16>) -> Receiver {
    serve(script, None).await
}

/// A certificate authority made for one test, and a server certificate it signed for
/// `127.0.0.1` and `localhost`.
pub struct TestCa {
    /// The CA certificate (PEM): what a client must trust.
    pub ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key_der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server_chain: vec![server_cert.der().clone()],
            server_key_der: server_key.serialize_der(),
        }
    }

    /// Writes the CA certificate to `dir/name.pem` and returns the path.
    pub fn write_ca(&self, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(format!("{name}.pem"));
        std::fs::write(&path, &self.ca_pem).unwrap();
        path
    }

    /// A TLS acceptor presenting the server certificate (for servers of other protocols,
    /// e.g. a stand-in Kafka listener).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::new(self.server_config()))
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                self.server_chain.clone(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(self.server_key_der.clone().into()),
            )
            .unwrap()
    }
}

/// A receiver as [`receiver`], over HTTPS with a certificate signed by `ca`.
pub async fn tls_receiver(script: Vec<u16>, ca: &TestCa) -> Receiver {
    serve(
        script,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            ca.server_config(),
        ))),
    )
    .await
}

async fn serve(script: Vec<u16>, tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((sock, _)) = listener.accept().await {
            let status = *script.get(n).or(script.last()).unwrap_or(&200);
            let g = g.clone();
            match &tls {
                None => {
                    n += 1;
                    tokio::spawn(answer(sock, status, g));
                }
                Some(acceptor) => {
                    // A client that rejects our certificate never sends a request, and
                    // does not use up a status of the script.
                    if let Ok(stream) = acceptor.accept(sock).await {
                        n += 1;
                        tokio::spawn(answer(stream, status, g));
                    }
                }
            }
        }
    });
    Receiver { url, got }
}

/// Reads one request (headers, then `content-length` bytes), records it, answers `status`.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    status: u16,
    got: Arc<Mutex<Vec<Received>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, headers) = loop {
        let r = sock.read(&mut chunk).await.unwrap_or(0);
        if r == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..r]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..i]).to_string();
            let headers: HashMap<String, String> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            break (i + 4, headers);
        }
    };
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let r = sock.read(&mut chunk).await.unwrap_or(0);
        if r == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..r]);
    }
    let body = buf[head_end..(head_end + len).min(buf.len())].to_vec();
    got.lock().unwrap().push(Received { headers, body });
    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = sock.write_all(resp.as_bytes()).await;
    let _ = sock.shutdown().await;
}

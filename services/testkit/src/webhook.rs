//! A loopback HTTP receiver for webhook tests: records each request's headers and body and
//! answers with the next status of a script.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        while let Ok((sock, _)) = listener.accept().await {
            let status = *script.get(n).or(script.last()).unwrap_or(&200);
            n += 1;
            tokio::spawn(answer(sock, status, g.clone()));
        }
    });
    Receiver { url, got }
}

/// Reads one request (headers, then `content-length` bytes), records it, answers `status`.
async fn answer(mut sock: TcpStream, status: u16, got: Arc<Mutex<Vec<Received>>>) {
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

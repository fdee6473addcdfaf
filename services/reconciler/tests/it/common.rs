//! Shared helpers: licences, counts, and a tiny loopback HTTP receiver.

use chrono::{DateTime, Utc};
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::StaticCounts;
use sitetally_reconciler::{
    CategoryCount, Count, CountError, CountQuery, CountSource, LicenceBook, Settings,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// acme: p1 (L), p2 (XL), p3 (M); all paid from 2025-01-01 for a year.
pub fn book() -> LicenceBook {
    LicenceBook::from_toml_str(
        r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "p1"
[[tenants.sites.licences]]
tier = "L"
kind = "paid"
start = "2025-01-01"
[[tenants.sites]]
id = "p2"
[[tenants.sites.licences]]
tier = "XL"
kind = "paid"
start = "2025-01-01"
[[tenants.sites]]
id = "p3"
[[tenants.sites.licences]]
tier = "M"
kind = "paid"
start = "2025-01-01"
"#,
        &Settings::default(),
    )
    .unwrap()
}

/// Counts that tests change between runs; exact counts equal the value.
#[derive(Debug, Default, Clone)]
pub struct MutableCounts {
    pub inner: Arc<Mutex<StaticCounts>>,
    pub exact_calls: Arc<Mutex<usize>>,
}

impl MutableCounts {
    pub fn set(&self, site: &str, value: u64, sigma: f64) {
        let mut g = self.inner.lock().unwrap();
        g.counts.retain(|c| c.site != site);
        let count = if sigma > 0.0 {
            Count::estimated(value, sigma)
        } else {
            Count::exact(value)
        };
        g.counts.push(CategoryCount {
            tenant: "acme".into(),
            site: site.into(),
            category: DeviceCategory::Ot,
            count,
        });
        g.exact.insert(("acme".into(), site.into()), value);
    }

    /// Sets an estimate whose true (exact) value differs.
    pub fn set_estimate(&self, site: &str, estimate: u64, sigma: f64, exact: u64) {
        self.set(site, estimate, sigma);
        self.inner
            .lock()
            .unwrap()
            .exact
            .insert(("acme".into(), site.into()), exact);
    }
}

#[async_trait::async_trait]
impl CountSource for MutableCounts {
    async fn site_counts(&self, q: &CountQuery) -> Result<Vec<CategoryCount>, CountError> {
        let s = self.inner.lock().unwrap().clone();
        s.site_counts(q).await
    }
    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        categories: &[DeviceCategory],
        q: &CountQuery,
    ) -> Result<u64, CountError> {
        *self.exact_calls.lock().unwrap() += 1;
        let s = self.inner.lock().unwrap().clone();
        s.exact_site_count(tenant, site, categories, q).await
    }
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// Loopback HTTP receiver answering each request with the next status of `script`
/// (the last one repeats).
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
}

pub async fn receiver(script: Vec<u16>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let status = *script.get(n).or(script.last()).unwrap_or(&200);
            n += 1;
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
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
                g.lock().unwrap().push(Received { headers, body });
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Receiver { url, got }
}

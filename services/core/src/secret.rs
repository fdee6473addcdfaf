//! [`Secret`]: the one wrapper for credentials (ClickHouse password, webhook secrets, API
//! tokens). Its `Debug` and `Display` print `***`, so a secret never reaches a log line,
//! an error message or `--print-config`; only [`Secret::expose`] gives the value, at the
//! place it is used.

use serde::Deserialize;

/// A credential that never prints.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `url` with the password of its `user:password@` part shown as `***` (for logs and
/// `--print-config`; the URL itself is still used as given).
pub fn redact_url(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            match userinfo.find(':') {
                Some(colon) => std::borrow::Cow::Owned(format!(
                    "{}{}:***{}",
                    &url[..start],
                    &userinfo[..colon],
                    &url[start + at..]
                )),
                None => std::borrow::Cow::Borrowed(url),
            }
        }
        None => std::borrow::Cow::Borrowed(url),
    }
}

/// Whether a configuration key names a credential (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, ...): its value prints as `***`.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "credential"]
        .iter()
        .any(|w| k.contains(w))
}

/// `value` as it may be printed under `key`: `***` for credential keys.
pub fn shown_value<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) {
        "***"
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_secret_keys_are_recognised() {
        assert_eq!(
            redact_url("https://ingest:hunter2@ch.example:8443/?database=x"),
            "https://ingest:***@ch.example:8443/?database=x"
        );
        assert_eq!(redact_url("http://user@ch:8123"), "http://user@ch:8123");
        assert_eq!(redact_url("http://ch:8123/a@b"), "http://ch:8123/a@b");
        assert_eq!(redact_url("plain"), "plain");
        for k in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        assert!(!is_secret_key("security.protocol"));
    }

    #[test]
    fn never_prints_and_reads_from_config_text() {
        let s: Secret = serde_json::from_str("\"hunter2-hunter2\"").unwrap();
        assert_eq!(s.expose(), "hunter2-hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug only
        struct Config {
            password: Option<Secret>,
        }
        let printed = format!("{:?}", Config { password: Some(s) });
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

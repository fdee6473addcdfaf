//! Licence test documents shared by the licence tests.

use super::{LicenceBook, LicenceError};
use crate::settings::Settings;
use chrono::{DateTime, Utc};

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn load(s: &str) -> Result<LicenceBook, LicenceError> {
    LicenceBook::from_toml_str(s, &Settings::default())
}

pub const ONE: &str = r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "plant-1"
[[tenants.sites.licences]]
tier = "L"
kind = "paid"
start = "2025-01-01T00:00:00Z"
"#;

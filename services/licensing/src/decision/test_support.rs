//! Licence documents and a site decider shared by the decision tests.

use super::{decide_site, Outcome, SiteContext, Status};
use crate::licence::LicenceBook;
use crate::settings::Settings;
use chrono::{DateTime, Utc};

pub const MID: &str = "2025-06-01T00:00:00Z";

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn book(doc: &str) -> LicenceBook {
    LicenceBook::from_toml_str(doc, &Settings::default()).unwrap()
}

pub fn site_doc(licences: &str) -> String {
    format!("[[tenants]]\nid = \"acme\"\n[[tenants.sites]]\nid = \"p1\"\n{licences}")
}

pub fn lic(tier: &str, kind: &str, extra: &str) -> String {
    format!(
        "[[tenants.sites.licences]]\ntier = \"{tier}\"\nkind = \"{kind}\"\nstart = \"2025-01-01T00:00:00Z\"\n{extra}\n"
    )
}

/// Decides the first site of the book's first tenant with default settings.
pub fn decide(b: &LicenceBook, value: u64, now: &str, prev: Option<&Status>) -> Outcome {
    decide_with(b, &Settings::default(), value, now, prev)
}

/// Decides the first site of the book's first tenant with settings `s`.
pub fn decide_with(
    b: &LicenceBook,
    s: &Settings,
    value: u64,
    now: &str,
    prev: Option<&Status>,
) -> Outcome {
    let tenant = &b.tenants[0];
    let ctx = SiteContext {
        tenant: Some(tenant),
        site_id: tenant.sites.first().map_or("", |s| s.id.as_str()),
        site: tenant.sites.first(),
        catalogue: &tenant.catalogue,
        settings: s,
        now: t(now),
    };
    decide_site(&ctx, value, prev)
}

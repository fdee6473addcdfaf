//! The licence file, and licences kept in the store (ClickHouse migration 007, or the
//! embedded store): `import` validates a licence file exactly as `--licences FILE` would
//! and stores one JSON document per tenant; `load` reads the newest document of every
//! tenant back into a [`LicenceBook`], naming the tenant whose stored licences no longer
//! validate.

use sitetally_licensing::licence::{LicenceBook, LicenceError};
use sitetally_licensing::settings::Settings;
use sitetally_store::history::LicenceTable;
use std::path::Path;

/// Why licences could not be imported or loaded.
#[derive(Debug, thiserror::Error)]
pub enum LicenceTableError {
    #[error(transparent)]
    Invalid(#[from] LicenceError),
    #[error("licences table, tenant {tenant:?}: {error}")]
    Stored { tenant: String, error: LicenceError },
    #[error("licences table unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(e: impl std::fmt::Display) -> LicenceTableError {
    LicenceTableError::Unavailable(e.to_string())
}

/// Reads and validates the licence file `path` (TOML, or JSON by its `.json` name).
pub fn load_file(path: &Path, settings: &Settings) -> Result<LicenceBook, LicenceError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LicenceError::Io {
        file: file.clone(),
        source,
    })?;
    LicenceBook::parse(&file, &text, settings)
}

/// Validates `path` (TOML or JSON, as `--licences`) and stores each tenant's entry, plus the
/// global catalogue override under tenant `''`. Returns the number of tenants stored.
pub async fn import(
    store: &dyn LicenceTable,
    path: &Path,
    settings: &Settings,
) -> Result<usize, LicenceTableError> {
    load_file(path, settings)?;
    let text = std::fs::read_to_string(path).map_err(unavailable)?;
    let raw: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(unavailable)?
    } else {
        toml::from_str(&text).map_err(unavailable)?
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(c) = raw.get("catalogue") {
        rows.push((
            String::new(),
            serde_json::json!({ "catalogue": c }).to_string(),
        ));
    }
    for t in raw
        .get("tenants")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let id = t
            .get("id")
            .and_then(|i| i.as_str())
            .unwrap_or_default()
            .to_string();
        rows.push((id, t.to_string()));
    }
    let updated_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    store
        .put_licences(&rows, updated_ms)
        .await
        .map_err(unavailable)?;
    Ok(rows.iter().filter(|(t, _)| !t.is_empty()).count())
}

/// The newest licences of every tenant, validated as one book.
pub async fn load(
    store: &dyn LicenceTable,
    settings: &Settings,
) -> Result<LicenceBook, LicenceTableError> {
    let rows = store.licence_documents().await.map_err(unavailable)?;
    let mut catalogue = serde_json::Value::Null;
    let mut tenants = Vec::new();
    for (tenant, document) in rows {
        let doc: serde_json::Value =
            serde_json::from_str(&document).map_err(|e| LicenceTableError::Stored {
                tenant: tenant.clone(),
                error: LicenceError::Syntax {
                    file: "licences table".into(),
                    message: e.to_string(),
                },
            })?;
        if tenant.is_empty() {
            catalogue = doc.get("catalogue").cloned().unwrap_or_default();
            continue;
        }
        // Validate each tenant alone first, so an error names the tenant, not an index.
        LicenceBook::from_json_str(
            &serde_json::json!({ "tenants": [doc] }).to_string(),
            settings,
        )
        .map_err(|error| LicenceTableError::Stored { tenant, error })?;
        tenants.push(doc);
    }
    let mut book = serde_json::json!({ "tenants": tenants });
    if !catalogue.is_null() {
        book["catalogue"] = catalogue;
    }
    Ok(LicenceBook::from_json_str(&book.to_string(), settings)?)
}

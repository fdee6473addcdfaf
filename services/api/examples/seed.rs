//! Writes the sample world (see `sitetally_testkit::sample`) into an embedded store, with
//! its licence and token files, ready for `sitetally serve`:
//!
//! ```sh
//! cargo run -p sitetally-api --example seed -- /tmp/st
//! sitetally serve --data-dir /tmp/st --licences /tmp/st/licences.toml --tokens /tmp/st/tokens.toml
//! ```
//!
//! Sightings are relative to now (or to the RFC 3339 time given as second argument).

use sitetally_store::embedded::EmbeddedStore;
use sitetally_testkit::sample;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: seed DIR [NOW]"))?,
    );
    let now = match args.next() {
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t)?.with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let store = EmbeddedStore::open(&dir)?;
    let rows = sample::seed(&store, now).await?;
    std::fs::write(dir.join("licences.toml"), sample::LICENCES_TOML)?;
    std::fs::write(dir.join("tokens.toml"), sample::tokens_toml())?;
    println!(
        "{rows} sightings, licences.toml and tokens.toml written to {}",
        dir.display()
    );
    Ok(())
}

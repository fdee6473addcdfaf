//! Row-level figures of the ClickHouse tables, for operators checking a deployment and for
//! tests. Never for billing: redelivered rows exist until merges collapse them, and
//! counts come from sketches and `uniqExact` only.

use super::queries::Query;
use super::{classify, ClickHouseStore};
use crate::{CountFilter, StoreError};

impl ClickHouseStore {
    /// Rows in `sightings`, duplicates not yet merged away included.
    pub async fn sighting_rows(&self) -> Result<u64, StoreError> {
        self.scalar(&Query::SightingRows.sql(self.database(), &CountFilter::all()))
            .await
    }

    /// Distinct (tenant, site, day, device) in `sightings`: what the rows mean once merged.
    pub async fn distinct_device_days(&self) -> Result<u64, StoreError> {
        self.scalar(&Query::DistinctSightings.sql(self.database(), &CountFilter::all()))
            .await
    }

    /// `(run_id, decisions recorded)` of every reconciliation run, oldest first.
    pub async fn decisions_per_run(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.client()
            .query(&Query::RunsById.sql(self.database(), &CountFilter::all()))
            .fetch_all()
            .await
            .map_err(classify)
    }

    async fn scalar(&self, sql: &str) -> Result<u64, StoreError> {
        self.client().query(sql).fetch_one().await.map_err(classify)
    }
}

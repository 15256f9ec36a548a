//! A batch of events as columns, and how its rows go into PostgreSQL by
//! `COPY`.

use uuid::Uuid;

use crate::event::LocationEvent;

/// `COPY` of a [`Batch`]'s columns into `table`, in binary.
pub(super) fn copy_rows_into(table: &str) -> String {
    format!("COPY {table} (event_id, driver_id, lat, lng, sent_at, stored_by) FROM STDIN BINARY")
}

/// A batch of events, kept as columns: the rows of one `COPY` or one
/// `INSERT ... UNNEST`.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    event_ids: Vec<Uuid>,
    driver_ids: Vec<String>,
    lats: Vec<f64>,
    lngs: Vec<f64>,
    sent_ats: Vec<chrono::DateTime<chrono::Utc>>,
    stored_by: String,
}

impl Batch {
    /// The parameters of [`insert_rows_into`](super::insert_rows_into)'s statement, in order.
    pub fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 6] {
        [
            &self.event_ids,
            &self.driver_ids,
            &self.lats,
            &self.lngs,
            &self.sent_ats,
            &self.stored_by,
        ]
    }

    /// Copies the batch into `table`, the events' or one like it (`COPY ...
    /// FROM STDIN BINARY`): how many rows went in. Fails on the key when one
    /// of its ids is already stored.
    pub async fn copy_into(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        table: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        let sink = tx.copy_in(&copy_rows_into(table)).await?;
        self.write_rows(sink).await?.finish().await
    }

    /// Writes the rows into a started binary `COPY`; the caller finishes it
    /// (and may send more requests behind it meanwhile).
    pub(super) async fn write_rows(
        &self,
        sink: tokio_postgres::CopyInSink<bytes::Bytes>,
    ) -> Result<CopyRows, tokio_postgres::Error> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;
        let mut writer = Box::pin(BinaryCopyInWriter::new(
            sink,
            &[
                Type::UUID,
                Type::TEXT,
                Type::FLOAT8,
                Type::FLOAT8,
                Type::TIMESTAMPTZ,
                Type::TEXT,
            ],
        ));
        for i in 0..self.len() {
            writer
                .as_mut()
                .write(&[
                    &self.event_ids[i],
                    &self.driver_ids[i],
                    &self.lats[i],
                    &self.lngs[i],
                    &self.sent_ats[i],
                    &self.stored_by,
                ])
                .await?;
        }
        Ok(CopyRows(writer))
    }

    pub fn new(stored_by: impl Into<String>, capacity: usize) -> Self {
        Self {
            event_ids: Vec::with_capacity(capacity),
            driver_ids: Vec::with_capacity(capacity),
            lats: Vec::with_capacity(capacity),
            lngs: Vec::with_capacity(capacity),
            sent_ats: Vec::with_capacity(capacity),
            stored_by: stored_by.into(),
        }
    }

    pub fn push(&mut self, event: LocationEvent) {
        self.event_ids.push(event.event_id);
        self.driver_ids.push(event.driver_id);
        self.lats.push(event.lat);
        self.lngs.push(event.lng);
        self.sent_ats.push(event.sent_at);
    }

    pub fn len(&self) -> usize {
        self.event_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.event_ids.is_empty()
    }

    pub fn clear(&mut self) {
        self.event_ids.clear();
        self.driver_ids.clear();
        self.lats.clear();
        self.lngs.clear();
        self.sent_ats.clear();
    }
}

/// A `COPY` whose rows are written, to be finished.
pub(super) struct CopyRows(std::pin::Pin<Box<tokio_postgres::binary_copy::BinaryCopyInWriter>>);

impl CopyRows {
    /// Ends the `COPY`: how many rows went in.
    pub(super) async fn finish(mut self) -> Result<u64, tokio_postgres::Error> {
        self.0.as_mut().finish().await
    }
}

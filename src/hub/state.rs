//! Durable key-value state for the sides (MeshCore client sync state, federation cursors,
//! advert clocks), written through the same group-commit writer as posts.

use tokio::sync::{mpsc, oneshot};

use super::HubError;
use crate::store::{Reader, WriteOp};

#[derive(Clone)]
pub struct StateStore {
    writer: mpsc::Sender<WriteOp>,
    reader: Reader,
}

impl StateStore {
    pub(crate) fn new(writer: mpsc::Sender<WriteOp>, reader: Reader) -> Self {
        StateStore { writer, reader }
    }

    /// Stores `value` under `(ns, key)`; returns once committed.
    pub async fn put(&self, ns: &str, key: &str, value: Vec<u8>) -> Result<(), HubError> {
        let (reply, done) = oneshot::channel();
        self.writer
            .send(WriteOp::Put {
                ns: ns.to_string(),
                key: key.to_string(),
                value,
                reply,
            })
            .await
            .map_err(|_| HubError::Closed)?;
        Ok(done.await.map_err(|_| HubError::Closed)??)
    }

    pub async fn delete(&self, ns: &str, key: &str) -> Result<(), HubError> {
        let (reply, done) = oneshot::channel();
        self.writer
            .send(WriteOp::Delete {
                ns: ns.to_string(),
                key: key.to_string(),
                reply,
            })
            .await
            .map_err(|_| HubError::Closed)?;
        Ok(done.await.map_err(|_| HubError::Closed)??)
    }

    pub fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, HubError> {
        Ok(self.reader.kv_get(ns, key)?)
    }

    pub fn list(&self, ns: &str) -> Result<Vec<(String, Vec<u8>)>, HubError> {
        Ok(self.reader.kv_list(ns)?)
    }
}

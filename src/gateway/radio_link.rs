//! Adapts the gateway's [`RadioHandle`] to the MeshCore side's [`RadioLink`]: received frames are
//! forwarded from the radio's broadcast into the service's channel, and the engine's priorities
//! map onto the radio's transmit classes (replies and ACKs before pushes before adverts).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use crate::meshcore::server::engine::Priority;
use crate::meshcore::service::{RadioLink, Received, Transmitter};
use crate::radio::{RadioHandle, TxPriority};

/// Frames waiting between the radio and the engine; beyond this the radio's own broadcast
/// buffer absorbs bursts and counts what it loses.
const RX_QUEUE: usize = 256;

struct RadioTx {
    radio: RadioHandle,
    rejected: AtomicU64,
}

impl Transmitter for RadioTx {
    fn transmit(&self, frame: Vec<u8>, priority: Priority) {
        let class = match priority {
            Priority::Reply => TxPriority::Reply,
            Priority::Push => TxPriority::Push,
            Priority::Advert | Priority::Channel => TxPriority::Advert,
        };
        if let Err(e) = self.radio.transmit(frame, class) {
            let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
            // Rate-limit the log: the radio's own status counts every rejection.
            if n.is_power_of_two() {
                tracing::warn!("radio refused a MeshCore frame: {e} ({n} so far)");
            }
        }
    }
}

/// Connects the MeshCore side to a radio.
pub fn link(radio: &RadioHandle) -> RadioLink {
    let (tx, rx) = mpsc::channel(RX_QUEUE);
    let mut frames = radio.subscribe();
    tokio::spawn(async move {
        loop {
            match frames.recv().await {
                Ok(f) => {
                    let r = Received {
                        bytes: f.bytes.clone(),
                        rssi_dbm: f.rssi_dbm.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16,
                        snr_db: f.snr_db,
                        at: f.received_at,
                    };
                    if tx.send(r).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("MeshCore side missed {n} received frames (engine too slow)");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    RadioLink {
        rx,
        tx: Arc::new(RadioTx {
            radio: radio.clone(),
            rejected: AtomicU64::new(0),
        }),
    }
}

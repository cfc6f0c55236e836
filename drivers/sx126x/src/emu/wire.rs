//! The simulated air across processes: each process binds one Unix datagram socket
//! `<air dir>/<node id as 16 hex digits>.sock` and, when one of its radios starts transmitting,
//! sends a datagram to every other `*.sock` in the directory. No root needed; any program that
//! speaks this format can join as a radio. All integers little-endian.
//!
//! ```text
//! offset size  field
//!  0     4     magic "MRA1"
//!  4     1     kind: 1 = transmission start, 2 = transmission cut short
//!  5     8     sender node id (u64)
//! 13     8     transmission id (u64, unique per sender)
//! kind 1:
//! 21     8     frequency, Hz (u64)
//! 29     1     bandwidth, SX126x SetModulationParams code (0x04 = 125 kHz, 0x03 = 62.5 …)
//! 30     1     spreading factor 5..12
//! 31     1     coding rate 1..4 (4/5 .. 4/8)
//! 32     1     flags: bit0 CRC on, bit1 implicit header, bit2 IQ inverted, bit3 LDRO
//! 33     2     preamble length, symbols (u16)
//! 35     2     sync word registers 0x0740, 0x0741 (MeshCore: 0x14 0x24)
//! 37     2     radiated power, centi-dBm (i16)
//! 39     4     time on air, µs (u32) — informative; receivers recompute it
//! 43     1     payload length N
//! 44     N     payload (the LoRa frame)
//! kind 2:
//! 21     4     the transmission stopped this many µs after it started (u32)
//! ```
//!
//! A receiving process treats the arrival time of a kind-1 datagram as the start of the
//! preamble and applies its own link model (loss, drop) to it. Sends never block: a participant
//! that does not read its socket loses datagrams once its queue is full, and nobody waits for it.

use crate::params::{Bandwidth, CodingRate, LoRaParams};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const MAGIC: &[u8; 4] = b"MRA1";
pub const KIND_START: u8 = 1;
pub const KIND_CUT: u8 = 2;

/// A decoded air datagram.
#[derive(Debug, Clone, PartialEq)]
pub enum AirMessage {
    Start {
        sender: u64,
        tx_id: u64,
        params: LoRaParams,
        ldro: bool,
        power_dbm: f32,
        time_on_air: Duration,
        payload: Vec<u8>,
    },
    Cut {
        sender: u64,
        tx_id: u64,
        after: Duration,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("datagram too short ({0} bytes)")]
    Short(usize),
    #[error("bad magic")]
    Magic,
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("bad field {0}")]
    Field(&'static str),
}

pub fn encode(msg: &AirMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(MAGIC);
    match msg {
        AirMessage::Start {
            sender,
            tx_id,
            params,
            ldro,
            power_dbm,
            time_on_air,
            payload,
        } => {
            out.push(KIND_START);
            out.extend_from_slice(&sender.to_le_bytes());
            out.extend_from_slice(&tx_id.to_le_bytes());
            out.extend_from_slice(&params.frequency_hz.to_le_bytes());
            out.push(params.bandwidth.code());
            out.push(params.spreading_factor);
            out.push(params.coding_rate.code());
            let flags = u8::from(params.crc_on)
                | u8::from(params.implicit_header) << 1
                | u8::from(params.invert_iq) << 2
                | u8::from(*ldro) << 3;
            out.push(flags);
            out.extend_from_slice(&params.preamble_len.to_le_bytes());
            out.extend_from_slice(&params.sync_word);
            let centi = (power_dbm * 100.0).round().clamp(-32768.0, 32767.0) as i16;
            out.extend_from_slice(&centi.to_le_bytes());
            let us = u32::try_from(time_on_air.as_micros()).unwrap_or(u32::MAX);
            out.extend_from_slice(&us.to_le_bytes());
            let n = payload.len().min(255);
            out.push(n as u8);
            out.extend_from_slice(&payload[..n]);
        }
        AirMessage::Cut {
            sender,
            tx_id,
            after,
        } => {
            out.push(KIND_CUT);
            out.extend_from_slice(&sender.to_le_bytes());
            out.extend_from_slice(&tx_id.to_le_bytes());
            let us = u32::try_from(after.as_micros()).unwrap_or(u32::MAX);
            out.extend_from_slice(&us.to_le_bytes());
        }
    }
    out
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, WireError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(WireError::Short(b.len()))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, WireError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(WireError::Short(b.len()))
}

fn u16_at(b: &[u8], at: usize) -> Result<[u8; 2], WireError> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Short(b.len()))
}

fn byte(b: &[u8], at: usize) -> Result<u8, WireError> {
    b.get(at).copied().ok_or(WireError::Short(b.len()))
}

/// Decodes one datagram; malformed input is an error, never a panic.
pub fn decode(b: &[u8]) -> Result<AirMessage, WireError> {
    if b.len() < 21 {
        return Err(WireError::Short(b.len()));
    }
    if &b[..4] != MAGIC {
        return Err(WireError::Magic);
    }
    let sender = u64_at(b, 5)?;
    let tx_id = u64_at(b, 13)?;
    match b[4] {
        KIND_START => {
            let frequency_hz = u64_at(b, 21)?;
            let bandwidth =
                Bandwidth::from_code(byte(b, 29)?).ok_or(WireError::Field("bandwidth"))?;
            let sf = byte(b, 30)?;
            if !(5..=12).contains(&sf) {
                return Err(WireError::Field("spreading factor"));
            }
            let coding_rate =
                CodingRate::from_code(byte(b, 31)?).ok_or(WireError::Field("coding rate"))?;
            let flags = byte(b, 32)?;
            let preamble_len = u16::from_le_bytes(u16_at(b, 33)?);
            let sync_word = u16_at(b, 35)?;
            let power = i16::from_le_bytes(u16_at(b, 37)?);
            let toa = u32_at(b, 39)?;
            let n = usize::from(byte(b, 43)?);
            let payload = b.get(44..44 + n).ok_or(WireError::Short(b.len()))?.to_vec();
            let params = LoRaParams {
                frequency_hz,
                bandwidth,
                spreading_factor: sf,
                coding_rate,
                preamble_len,
                crc_on: flags & 1 != 0,
                implicit_header: flags & 2 != 0,
                invert_iq: flags & 4 != 0,
                sync_word,
                power_dbm: 0,
            };
            Ok(AirMessage::Start {
                sender,
                tx_id,
                params,
                ldro: flags & 8 != 0,
                power_dbm: f32::from(power) / 100.0,
                time_on_air: Duration::from_micros(u64::from(toa)),
                payload,
            })
        }
        KIND_CUT => Ok(AirMessage::Cut {
            sender,
            tx_id,
            after: Duration::from_micros(u64::from(u32_at(b, 21)?)),
        }),
        k => Err(WireError::Kind(k)),
    }
}

/// This process's place on a shared air directory: the socket it is heard on,
/// `<dir>/<node:016x>.sock`, and a separate unbound, non-blocking socket it sends from, so that a
/// peer that stops reading (a suspended program) costs that peer its frames and never blocks the
/// sender. Dropping it closes the receiving side (waking [`AirReceiver::recv`]) and removes the
/// socket file.
pub struct AirSocket {
    recv: UnixDatagram,
    sender: Arc<AirSender>,
    own: PathBuf,
    closed: Arc<AtomicBool>,
}

/// The sending half of an [`AirSocket`]; shareable, so sends can happen outside any lock.
pub struct AirSender {
    sock: UnixDatagram,
    dir: PathBuf,
    own: PathBuf,
    failures: AtomicU64,
    dropped: AtomicU64,
}

/// The receiving half of an [`AirSocket`], for the thread that reads it.
pub struct AirReceiver {
    sock: UnixDatagram,
    closed: Arc<AtomicBool>,
}

impl AirSocket {
    /// Binds `<dir>/<node:016x>.sock` (creating the directory).
    pub fn bind(dir: &Path, node: u64) -> std::io::Result<AirSocket> {
        std::fs::create_dir_all(dir)?;
        let own = dir.join(format!("{node:016x}.sock"));
        let _ = std::fs::remove_file(&own);
        let recv = UnixDatagram::bind(&own)?;
        let send = UnixDatagram::unbound()?;
        send.set_nonblocking(true)?;
        Ok(AirSocket {
            recv,
            sender: Arc::new(AirSender {
                sock: send,
                dir: dir.to_path_buf(),
                own: own.clone(),
                failures: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
            own,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn sender(&self) -> Arc<AirSender> {
        self.sender.clone()
    }

    /// A blocking reader of this socket (for one thread); it ends when the socket is dropped.
    pub fn receiver(&self) -> std::io::Result<AirReceiver> {
        Ok(AirReceiver {
            sock: self.recv.try_clone()?,
            closed: self.closed.clone(),
        })
    }
}

impl AirSender {
    /// Sends to every other radio in the directory without ever blocking: a peer whose queue is
    /// full loses this datagram (counted in [`AirSender::dropped`]); peers that are gone are
    /// removed.
    pub fn broadcast(&self, datagram: &[u8]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path == self.own || path.extension().and_then(|x| x.to_str()) != Some("sock") {
                continue;
            }
            match self.sock.send_to(datagram, &path) {
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    // A socket file whose process is gone.
                    let _ = std::fs::remove_file(&path);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    // The peer does not read (suspended, overloaded): its loss, not ours.
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends that failed for another reason than a full queue (directory unreadable, …).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Datagrams not delivered because the peer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AirReceiver {
    /// Blocks until a datagram arrives (no timeout, so an idle air costs no wake-ups); `None`
    /// once the [`AirSocket`] was dropped or the socket failed.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            let r = self.sock.recv(buf);
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            match r {
                Ok(n) => return Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("simulated air: receiving stopped: {e}");
                    return None;
                }
            }
        }
    }
}

impl Drop for AirSocket {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        // Wakes a receiver blocked in recv (it then sees `closed`).
        let _ = self.recv.shutdown(std::net::Shutdown::Both);
        let _ = std::fs::remove_file(&self.own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let params = LoRaParams::meshcore(869_618_000, Bandwidth::Khz62_5, 8, CodingRate::Cr4_8);
        let msg = AirMessage::Start {
            sender: 7,
            tx_id: 9,
            params: LoRaParams {
                power_dbm: 0,
                ..params
            },
            ldro: false,
            power_dbm: 22.0,
            time_on_air: Duration::from_micros(214_016),
            payload: vec![1, 2, 3],
        };
        let b = encode(&msg);
        assert_eq!(b.len(), 47);
        assert_eq!(decode(&b), Ok(msg));
        let cut = AirMessage::Cut {
            sender: 7,
            tx_id: 9,
            after: Duration::from_micros(1000),
        };
        assert_eq!(decode(&encode(&cut)), Ok(cut));
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err());
        }
        let mut bad = b.clone();
        bad[30] = 13;
        assert_eq!(decode(&bad), Err(WireError::Field("spreading factor")));
    }
}

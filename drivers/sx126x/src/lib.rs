//! SX126x LoRa driver (placeholder crate root; filled by the radio work).

//! The `radio:` section: which LoRa backend the gateway drives.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RadioBackend {
    /// The SX126x driver on an emulated chip on the simulated air.
    #[default]
    Sim,
    /// The SX126x driver on real hardware over spidev + GPIO.
    Sx126x,
    /// No radio: rooms are served to the host and to peers only.
    None,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RadioConfig {
    #[serde(default)]
    pub backend: RadioBackend,
}

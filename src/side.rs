//! What every side gets when it starts: the configuration, the hub, the status board and the
//! shutdown signal. It sits below the sides and above the hub, so a side never reaches up into
//! the start-up code (`gateway`) for it.
//!
//! Room changes made by a reload reach the sides through [`Hub::watch_rooms`]: a side waits on
//! it and applies a new PSK or history depth at once, without polling.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::hub::Hub;
use crate::status::StatusBoard;

/// What every side gets when it starts.
#[derive(Clone)]
pub struct SideContext {
    pub config: Arc<Config>,
    pub hub: Hub,
    pub status: StatusBoard,
    /// Turns `true` when the gateway is stopping.
    pub shutdown: watch::Receiver<bool>,
}

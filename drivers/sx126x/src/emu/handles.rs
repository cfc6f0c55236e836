//! The handles a driver reaches one emulated chip through: [`EmuSpi`] (one SPI transaction) and
//! [`EmuLines`] (NRESET, BUSY, DIO1, the RF switch lines, delays on the world's clock).

use super::chip::EmuMode;
use super::world::{ChipId, World, US};
use crate::hal::{BoardLines, HalError, SpiTransfer, WaitOutcome};
use crate::wakeup::Wakeup;
use std::time::Duration;

/// SPI handle on one emulated chip.
pub struct EmuSpi {
    pub(super) world: World,
    pub(super) chip: ChipId,
}

impl SpiTransfer for EmuSpi {
    fn transfer(&mut self, tx: &[u8], rx: &mut [u8]) -> Result<(), HalError> {
        if rx.len() != tx.len() {
            return Err(HalError::Other("SPI rx and tx lengths differ".into()));
        }
        let mut st = self.world.lock();
        st.transaction(self.chip, tx, rx);
        drop(st);
        self.world.shared.cond.notify_all();
        Ok(())
    }
}

/// Board lines of one emulated chip.
pub struct EmuLines {
    pub(super) world: World,
    pub(super) chip: ChipId,
    /// DIO1 edges counted when the driver last read the level: a wait that follows counts the
    /// edges since then, so one that rises between the read and the wait is not missed (the
    /// kernel queues edge events the same way for the Linux back-end).
    pub(super) edges_at_read: Option<u64>,
}

impl EmuLines {
    /// The edge count a wait compares against: as of the last level read, else now.
    fn edges_since(&mut self) -> u64 {
        match self.edges_at_read.take() {
            Some(n) => n,
            None => self.world.lock().chips[self.chip].dio1_edges,
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn chip(&self) -> ChipId {
        self.chip
    }
}

impl BoardLines for EmuLines {
    fn set_reset(&mut self, high: bool) -> Result<(), HalError> {
        let mut st = self.world.lock();
        let chip = self.chip;
        let was_high = st.chips[chip].nreset_high;
        if !high {
            st.abort_activity(chip);
            let c = &mut st.chips[chip];
            c.nreset_high = false;
            c.set_mode(EmuMode::Reset);
        } else if !was_high {
            let c = &mut st.chips[chip];
            c.power_on_state();
            c.nreset_high = true;
            c.counters.resets += 1;
            c.set_mode(EmuMode::StbyRc);
            st.set_busy(chip, 3_500 * US);
        }
        drop(st);
        self.world.shared.cond.notify_all();
        Ok(())
    }

    fn busy(&mut self) -> Result<bool, HalError> {
        let st = self.world.lock();
        Ok(st.busy(self.chip))
    }

    fn wait_busy_low(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let chip = self.chip;
        Ok(self.world.wait_until(timeout, |st| !st.busy(chip)))
    }

    fn dio1(&mut self) -> Result<bool, HalError> {
        let st = self.world.lock();
        let c = &st.chips[self.chip];
        self.edges_at_read = Some(c.dio1_edges);
        Ok(c.dio1_level)
    }

    fn wait_dio1_rising(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let chip = self.chip;
        let edges = self.edges_since();
        Ok(self
            .world
            .wait_until(timeout, |st| st.chips[chip].dio1_edges > edges))
    }

    fn wait_dio1_or_wakeup(
        &mut self,
        timeout: Duration,
        wakeup: &Wakeup,
    ) -> Result<WaitOutcome, HalError> {
        let chip = self.chip;
        // The wake-up notifies the world's condition variable: the wait below ends at once,
        // in real time and in virtual time alike, without polling.
        wakeup.set_hook(self.world.wake_hook());
        let edges = self.edges_since();
        self.world.wait_until(timeout, |st| {
            st.chips[chip].dio1_edges > edges || wakeup.is_pending()
        });
        if self.world.lock().chips[chip].dio1_edges > edges {
            Ok(WaitOutcome::Dio1)
        } else if wakeup.take() {
            Ok(WaitOutcome::Woken)
        } else {
            Ok(WaitOutcome::TimedOut)
        }
    }

    fn delay(&mut self, d: Duration) {
        self.world.wait_until(d, |_| false);
    }

    fn set_txen(&mut self, on: bool) -> Result<(), HalError> {
        self.world.lock().chips[self.chip].txen = on;
        Ok(())
    }

    fn set_rxen(&mut self, on: bool) -> Result<(), HalError> {
        self.world.lock().chips[self.chip].rxen = on;
        Ok(())
    }
}

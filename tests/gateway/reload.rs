//! A PSK changed by SIGHUP takes effect on the radio side (MeshCore login) and on the TUN side
//! (datagram seals) at once: the sides follow the hub's room list (`Hub::watch_rooms`) instead of
//! polling for changes (they used to, every 2 s and 0.5 s). The test waits for each effect and
//! prints how long it took after the signal; it asserts the effect, never a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent, Output};
use meshroom_gw::meshcore::server::engine::Now;
use meshroom_gw::meshcore::wire::identity::{LocalIdentity, PublicKey};
use meshroom_gw::radio::{open_sim_standalone, RadioHandle, RxFrame, SimParams, TxPriority};
use meshroom_gw::tun::seal::SealKey;
use tokio::sync::broadcast;

use crate::common::Gateway;
use crate::tun_support::*;

const OLD: &str = "s3cret-club";
const NEW: &str = "n3w-club-key";

fn body(air: &std::path::Path) -> String {
    format!(
        "rooms:\n  - name: \"Public\"\n  - name: \"club\"\n    psk: \"{OLD}\"\n\
         tun:\n  enabled: on\n\
         radio:\n  backend: sim\n  region: usa-canada\n  air_dir: \"{}\"\n\
         meshcore:\n  advert_interval_s: 600.0\n  first_advert_delay_s: 0.2\n  reply_delay_s: 0.1\n",
        air.display()
    )
}

fn now(start: Instant) -> Now {
    Now {
        mono_ms: start.elapsed().as_millis() as u64,
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32,
    }
}

/// A MeshCore companion on its own emulated radio on the gateway's air.
struct Phone {
    companion: Companion,
    radio: RadioHandle,
    rx: broadcast::Receiver<Arc<RxFrame>>,
    start: Instant,
}

impl Phone {
    /// Sends a login and waits for the room's answer; `true` when it logged in. A login lost on
    /// the air (a collision with the gateway's own frames) is sent again, up to three times.
    async fn login(&mut self, room: &PublicKey, password: &str) -> bool {
        for _ in 0..3 {
            let outs = self
                .companion
                .login(now(self.start), room, password, None)
                .unwrap();
            for o in outs {
                if let Output::Transmit(f) = o {
                    self.radio.transmit(f, TxPriority::Reply).expect("queued");
                }
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while let Ok(Ok(frame)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
                for o in self.companion.handle_frame(now(self.start), &frame.bytes) {
                    if let Output::Event(CompanionEvent::LoggedIn { room: r, .. }) = o {
                        if r == *room {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// Sends a login without waiting for an answer (a wrong password gets none).
    fn login_blind(&mut self, room: &PublicKey, password: &str) {
        for o in self
            .companion
            .login(now(self.start), room, password, None)
            .unwrap()
        {
            if let Output::Transmit(f) = o {
                self.radio.transmit(f, TxPriority::Reply).expect("queued");
            }
        }
    }
}

fn counter(gw: &Gateway, name: &str) -> u64 {
    gw.status()["meshcore"]["counters"][name]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_psk_changed_by_sighup_takes_effect_on_the_radio_and_tun_sides_at_once() {
    if !can_run("a_psk_changed_by_sighup_takes_effect_on_the_radio_and_tun_sides_at_once") {
        return;
    }
    let ns = Netns::new("reload");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let air = dir_path.join("air");
        std::fs::create_dir_all(&air).unwrap();
        let gw = tun_gateway_in(&name, &dir_path, &body(&air));
        let (group, port) = room_group(&gw, "club");
        let tx = sender();
        let club_key = PublicKey::from_hex(
            gw.status()["meshcore"]["rooms"]["club"]["public_key"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let cfg = meshroom_gw::config::load_file(&gw.config_path)
                .unwrap()
                .config;
            let radio = open_sim_standalone(&air, SimParams::from_config(&cfg.radio).unwrap())
                .await
                .unwrap();
            let mut companion = Companion::new(
                LocalIdentity::from_seed(&[42; 32]),
                "pat",
                CompanionConfig::default(),
                42,
            );
            companion.add_room(club_key, "club", 0);
            let rx = radio.subscribe();
            let mut phone = Phone {
                companion,
                radio,
                rx,
                start: Instant::now(),
            };
            assert!(
                phone.login(&club_key, OLD).await,
                "the old PSK logs in before the reload:\n{}",
                gw.log()
            );

            // The reload. Its log line is the marker that the hub has published the new rooms;
            // from then on each side must use the new PSK for the very next thing it handles.
            let config = std::fs::read_to_string(&gw.config_path).unwrap();
            std::fs::write(&gw.config_path, config.replace(OLD, NEW)).unwrap();
            let signalled = Instant::now();
            gw.sighup();
            gw.wait_for_log("SIGHUP: reloaded", Duration::from_secs(10));
            let reloaded = signalled.elapsed();

            // TUN: one datagram sealed with the new PSK, sent once, becomes a post.
            let new = SealKey::derive(NEW, "club");
            tx.send_to(
                &new.seal_random(br#"{"text":"sealed anew"}"#),
                (group, port),
            )
            .unwrap();
            assert!(
                crate::common::wait_for(Duration::from_secs(5), || {
                    gw.history_with_psk("club", 10, Some(NEW))
                        .iter()
                        .any(|p| p["text"] == "sealed anew")
                })
                .await,
                "the TUN side did not take the new PSK: {}",
                gw.status()["tun"]
            );
            let tun_took = signalled.elapsed();
            let bad_before = dropped(&gw, "bad_seal");
            tx.send_to(
                &SealKey::derive(OLD, "club").seal_random(b"old key words"),
                (group, port),
            )
            .unwrap();
            assert!(
                crate::common::wait_for(Duration::from_secs(5), || dropped(&gw, "bad_seal")
                    == bad_before + 1)
                .await,
                "the old PSK's seal is refused"
            );

            // Radio: a login with the new password is answered; one with the old is refused.
            let radio_start = Instant::now();
            assert!(
                phone.login(&club_key, NEW).await,
                "the radio side did not take the new PSK:\n{}",
                gw.log()
            );
            let radio_took = signalled.elapsed();
            let radio_login = radio_start.elapsed();
            let failed = counter(&gw, "login_failed");
            // A wrong password gets no answer, so the frame may be lost on the air unnoticed
            // (the gateway is busy pushing to the phone that just logged in): send it again, as
            // an app retries, until the gateway has counted it.
            let mut refused = false;
            for _ in 0..5 {
                phone.login_blind(&club_key, OLD);
                if crate::common::wait_for(Duration::from_secs(4), || {
                    counter(&gw, "login_failed") > failed
                })
                .await
                {
                    refused = true;
                    break;
                }
            }
            assert!(refused, "the old password is refused after the reload");
            eprintln!(
                "SIGHUP → reload logged {reloaded:?}; new PSK in effect on TUN after \
                 {tun_took:?}, on the radio (login answered) after {radio_took:?} \
                 (of which the login's own round trip on the air {radio_login:?})"
            );
        });
    });
}

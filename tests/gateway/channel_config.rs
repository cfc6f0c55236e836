//! Issue 13: the `channel:` binding in the configuration file — forms, secrets, and the rules
//! (private channel → private room, one room per channel, airtime), with file:line and key path.

use meshroom_gw::settings;

fn load(text: &str) -> Result<settings::Settings, String> {
    settings::parse(text, "c.yaml")
        .map(|(s, _)| s)
        .map_err(|e| e.to_string())
}

const KEY: &str = "00112233445566778899aabbccddeeff";

#[test]
fn public_hashtag_and_private_bindings_resolve() {
    let text = format!(
        "rooms:\n  - name: pub\n    channel: public\n  - name: ham\n    channel: \"#hamradio\"\n  - name: ops\n    psk: s3cret\n    channel:\n      name: ops\n      key: {KEY}\n      mode: bridge\n      max_per_minute: 1\n      hop_limit: 4\n"
    );
    let s = load(&text).unwrap();
    let ch = &s.meshcore.channels;
    assert_eq!(ch.len(), 3);
    assert_eq!(
        (ch[0].room.as_str(), ch[0].name.as_str()),
        ("pub", "Public")
    );
    assert_eq!(ch[0].key.hash(), 0x11);
    assert_eq!(ch[1].name, "#hamradio");
    assert_eq!(ch[2].mode.as_str(), "bridge");
    assert_eq!(ch[2].hop_limit, Some(4));
    // The key never shows in Debug output of the settings.
    let dbg = format!("{s:?}");
    assert!(!dbg.contains(KEY), "{dbg}");
    assert!(!dbg.contains("0, 17, 34"), "{dbg}");
}

#[test]
fn a_private_channel_needs_a_private_room() {
    let text = format!("rooms:\n  - name: ops\n    channel:\n      name: ops\n      key: {KEY}\n");
    let err = load(&text).unwrap_err();
    // Located at the channel's own lines (the mapping under `channel:`).
    assert!(err.contains("c.yaml:4:7"), "{err}");
    assert!(err.contains("rooms[0].channel"), "{err}");
    assert!(err.contains("psk"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}

#[test]
fn one_room_per_channel_and_well_formed_keys() {
    let err = load("rooms:\n  - name: a\n    channel: public\n  - name: b\n    channel: Public\n")
        .unwrap_err();
    assert!(
        err.contains("rooms[1].channel") && err.contains("rooms[0]"),
        "{err}"
    );
    let err =
        load("rooms:\n  - name: a\n    psk: x\n    channel:\n      name: ops\n      key: nothex\n")
            .unwrap_err();
    assert!(err.contains("rooms[0].channel.key"), "{err}");
    assert!(!err.contains("nothex"), "{err}");
    let err = load("rooms:\n  - name: a\n    channel: ops\n").unwrap_err();
    assert!(err.contains("rooms[0].channel"), "{err}");
    let err = load("rooms:\n  - name: a\n    channel:\n      name: \"#x\"\n      mode: shout\n")
        .unwrap_err();
    assert!(err.contains("rooms[0]"), "{err}");
}

#[test]
fn a_bridge_that_would_eat_the_duty_cycle_is_refused() {
    let err = load(
        "rooms:\n  - name: a\n    channel:\n      name: public\n      mode: bridge\n      max_per_minute: 60\nradio:\n  duty_cycle_percent: 1\n",
    )
    .unwrap_err();
    assert!(err.contains("rooms[0].channel.max_per_minute"), "{err}");
    assert!(err.contains("duty cycle"), "{err}");
}

/// The figures the README quotes: time on air of channel messages at the default preset.
#[test]
fn airtime_of_channel_messages_at_the_default_preset() {
    let s = load("rooms:\n  - name: a\n").unwrap();
    let radio = s.radio.expect("default radio");
    let lora = radio.settings.lora;
    for (what, len) in [
        (
            "typical (\"alice: \" + 40 chars)",
            2 + 3 + (5usize + 47).div_ceil(16) * 16,
        ),
        ("longest (160 chars)", settings::channel_frame_len(None)),
        ("longest, hop_limit 8", settings::channel_frame_len(Some(8))),
    ] {
        println!(
            "{what}: {len} bytes, {:.0} ms on air (SF{} BW{} kHz, duty cycle {}%)",
            lora.time_on_air(len).as_secs_f64() * 1000.0,
            lora.spreading_factor,
            lora.bandwidth.khz(),
            radio.duty_cycle_percent
        );
    }
}

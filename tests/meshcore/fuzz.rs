//! Random, truncated and bit-flipped bytes through every parser of the MeshCore codec: each
//! one returns an error or a value, never panics, and whatever parses emits back to the same
//! bytes.

use meshroom_gw::meshcore::wire::advert::AppData;
use meshroom_gw::meshcore::wire::message::{
    LoginReply, LoginRequest, PathBody, Request, Response, StatusBody, TextMessage,
};
use meshroom_gw::meshcore::wire::packet::{Frame, PacketRepr, PayloadType};
use meshroom_gw::meshcore::wire::payload::Payload;
use rand::{Rng, SeedableRng};

#[test]
fn random_bytes_never_panic_and_accepted_frames_round_trip() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d63);
    let mut accepted = 0;
    for i in 0..200_000u32 {
        let len = if i % 10 == 0 {
            rng.gen_range(0..300)
        } else {
            rng.gen_range(0..60)
        };
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Bias towards version 0 and sane path lengths so deeper layers get exercised.
        if let Some(b) = bytes.first_mut() {
            *b &= 0x3F;
        }
        if bytes.len() > 1 && i % 2 == 0 {
            bytes[1] &= 0x07;
        }
        if let Ok(frame) = Frame::new_checked(&bytes[..]) {
            let _ = (
                frame.route_type(),
                frame.payload_type(),
                frame.path(),
                frame.payload(),
            );
        }
        if let Ok(p) = PacketRepr::from_bytes(&bytes) {
            assert_eq!(p.to_bytes().unwrap(), bytes, "parse → emit is exact");
            if let Ok(payload) = Payload::parse(p.payload_type, &p.payload) {
                assert_eq!(payload.to_vec(), p.payload);
                accepted += 1;
            }
            let _ = p.packet_hash();
        }
        let _ = TextMessage::parse(&bytes);
        let _ = LoginRequest::parse(&bytes);
        let _ = LoginReply::parse(&bytes);
        let _ = PathBody::parse(&bytes);
        let _ = Request::parse(&bytes).map(|r| r.keep_alive_sync_since());
        let _ = Response::parse(&bytes);
        let _ = StatusBody::parse(&bytes);
        let _ = AppData::parse(&bytes);
        for t in 0..16u8 {
            if let Some(pt) = PayloadType::from_u8(t) {
                let _ = Payload::parse(pt, &bytes);
            }
        }
    }
    assert!(
        accepted > 10_000,
        "the fuzzer reaches the payload parsers ({accepted})"
    );
}

//! Entry point shared by the fuzz target `dongle_hosts` (`fuzz/`) and the corpus replay in
//! `cargo test`: arbitrary bytes, split where the first byte says, through every host engine
//! and every device engine; none may panic, and every engine still frames a valid telegram
//! afterwards.

use alloc::vec::Vec;

use crate::{Event, Indication, Kind, LinkMode};

/// Runs the engines over `data`.
pub fn hosts(data: &[u8]) {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let telegram: Vec<u8> = [
        0x18u8, 0x44, 0xAE, 0x4C, 0x44, 0x55, 0x22, 0x33, 0x68, 0x07, 0x7A, 0x55, 0x00, 0x00, 0x00,
        0x04, 0x13, 0x89, 0xE2, 0x01, 0x00, 0x02, 0x3B, 0x00, 0x00,
    ]
    .to_vec();
    for kind in Kind::ALL {
        let mut host = kind.host();
        let cut = usize::from(split).min(bytes.len());
        let (a, b) = bytes.split_at(cut);
        host.push(a);
        while host.poll(0).is_some() {}
        host.push(b);
        while host.poll(1).is_some() {}
        // Silence and a line end let unframed and line protocols drop what is pending.
        host.push(b"\n");
        while host.poll(10_000).is_some() {}
        while host.poll(20_000).is_some() {}
        let mut device = kind.device();
        device.push(bytes);
        while device.poll().is_some() {}
        // A device set up by the host's own init dialogue delivers the telegram.
        let mut configured = kind.device();
        for step in host.init(LinkMode::T1).unwrap_or_default() {
            configured.push(&step.write);
            while configured.poll().is_some() {}
        }
        if let Some(frame) = configured.indicate(&Indication {
            telegram: &telegram,
            rssi_dbm: -70.0,
            time_ms: 0,
            link_mode: LinkMode::T1,
        }) {
            // Every host must still find the telegram after the noise.
            host.push(&frame);
            let mut found = false;
            while let Some(e) = host.poll(20_000) {
                if let Event::Telegram(r) = e {
                    found |= r.telegram == telegram;
                }
            }
            // An HCI v1 frame without FCS in the noise can swallow the next frame: the
            // format has no way to tell (the FCS is optional); every other kind recovers.
            assert!(
                found || kind == Kind::Im871a,
                "{kind}: telegram lost after noise"
            );
        }
    }
}

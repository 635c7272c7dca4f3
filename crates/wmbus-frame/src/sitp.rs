//! Security information transfer protocol, SITP (EN 13757-7:2018 Annex A; OMS Annex F
//! Appendix F.A; addendum §5): the application layer of CI C3h/C6h (commands) and C4h/C5h
//! (responses) is a list of blocks
//! `BL(2 LE) ‖ BID ‖ BCF ‖ RecipientID ‖ DSI ‖ DSH1 ‖ DSH2 ‖ DS…`, BL counting the bytes after
//! it; BL = 0000h ends the list. Responses echo BID, RecipientID and DSH; BCF | 80h answers.

use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::Writer;

/// Block control field (addendum §5, BCF table): the command; responses set bit 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockControl(pub u8);

impl BlockControl {
    /// Transfer security information (DSI 01, 10, 11).
    pub const TRANSFER: Self = Self(0x00);
    /// Activate (DSI 02).
    pub const ACTIVATE: Self = Self(0x01);
    /// Deactivate.
    pub const DEACTIVATE: Self = Self(0x02);
    /// Destroy.
    pub const DESTROY: Self = Self(0x03);
    /// Combined activate/deactivate (DSI 03).
    pub const ACTIVATE_DEACTIVATE: Self = Self(0x04);
    /// Generate.
    pub const GENERATE: Self = Self(0x05);
    /// Get security information.
    pub const GET_INFORMATION: Self = Self(0x06);
    /// List all keys.
    pub const LIST_KEYS: Self = Self(0x07);
    /// List active keys.
    pub const LIST_ACTIVE_KEYS: Self = Self(0x08);
    /// List active keys with their counters (prEN 13757-7:2023).
    pub const LIST_ACTIVE_KEY_COUNTERS: Self = Self(0x09);
    /// End-to-end secured application data (DSI 30–37).
    pub const SECURED_DATA: Self = Self(0x20);

    /// Whether this is a response (bit 7).
    pub const fn is_response(self) -> bool {
        self.0 & 0x80 != 0
    }

    /// The response to this command.
    pub const fn response(self) -> Self {
        Self(self.0 | 0x80)
    }

    /// The command's name (for either direction).
    pub const fn name(self) -> &'static str {
        match self.0 & 0x7F {
            0x00 => "transfer_security_information",
            0x01 => "activate",
            0x02 => "deactivate",
            0x03 => "destroy",
            0x04 => "activate_deactivate",
            0x05 => "generate",
            0x06 => "get_security_information",
            0x07 => "list_keys",
            0x08 => "list_active_keys",
            0x09 => "list_active_key_counters",
            0x20 => "secured_application_data",
            0x70..=0x7F => "manufacturer_specific",
            _ => "reserved",
        }
    }
}

/// Data structure information (addendum §5, DSI table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataInfo(pub u8);

impl DataInfo {
    /// Empty (a request).
    pub const EMPTY: Self = Self(0x00);
    /// A key, AES-128 KWP (SP 800-38F) wrapped.
    pub const KEY_KWP: Self = Self(0x01);
    /// Activation, KWP framed.
    pub const ACTIVATION_KWP: Self = Self(0x02);
    /// Combined activate/deactivate, KWP framed.
    pub const ACTIVATE_DEACTIVATE_KWP: Self = Self(0x03);
    /// Active keys: `KeyID ‖ KeyVer` per key (provisional: the addendum names the
    /// structure, not its layout; DSI 23h's entries without the counter).
    pub const ACTIVE_KEYS: Self = Self(0x21);
    /// A status byte.
    pub const STATUS: Self = Self(0x22);
    /// Active key counters: `KeyID ‖ KeyVer ‖ KeyCounter(4 LE)` per key.
    pub const KEY_COUNTERS: Self = Self(0x23);
    /// Application data with an 8-byte CMAC.
    pub const CMAC8: Self = Self(0x32);
    /// Application data with a 16-byte CMAC.
    pub const CMAC16: Self = Self(0x33);

    /// The structure's name.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x00 => "empty",
            0x01 => "key_kwp",
            0x02 => "activation_kwp",
            0x03 => "activate_deactivate_kwp",
            0x10 => "certificate",
            0x11 => "key_pair",
            0x12 => "public_key",
            0x13 => "certificate_signing_request",
            0x20 => "all_keys_kwp",
            0x21 => "active_keys",
            0x22 => "status",
            0x23 => "active_key_counters",
            0x30 => "application_data_kwp",
            0x31 => "application_data_hmac_sha256",
            0x32 => "application_data_cmac8",
            0x33 => "application_data_cmac16",
            0x34 => "application_data_gcm",
            0x35 => "application_data_gmac",
            0x36 => "application_data_ccm8",
            0x37 => "application_data_ccm16",
            _ => "reserved",
        }
    }

    /// The MAC length of the CMAC-secured structures.
    pub const fn cmac_len(self) -> Option<usize> {
        match self.0 {
            0x32 => Some(8),
            0x33 => Some(16),
            _ => None,
        }
    }
}

/// A status byte's meaning (DSI 22h).
pub const fn status_name(status: u8) -> &'static str {
    match status {
        0x00 => "success",
        0x09 => "not_executed_another_block_failed",
        0x11 => "unknown_bcf",
        0x19 | 0x21 => "unknown_key_id_or_version",
        0x23 => "target_time_error",
        0x80 | 0x81 => "certificate_error",
        _ => "unknown",
    }
}

/// TargetTime "now" (5 bytes LE: 30 00 00 00 00 read as 3000000000h).
pub const TARGET_TIME_IMMEDIATE: u64 = 0x30_0000_0000;
/// TargetTime "do not activate".
pub const TARGET_TIME_INVALID: u64 = 0x30_8000_0000;

/// One block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// Offset of BL in the application layer.
    pub offset: usize,
    /// BID.
    pub block_id: u8,
    /// BCF.
    pub control: BlockControl,
    /// RecipientID.
    pub recipient: u8,
    /// DSI.
    pub data_info: DataInfo,
    /// DSH1 (a key id, a wrapper key id; FFh unused).
    pub header1: u8,
    /// DSH2 (a key version; FFh unused).
    pub header2: u8,
    /// DS.
    pub data: &'a [u8],
}

impl Block<'_> {
    /// Bytes [`Self::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        8 + self.data.len()
    }

    /// Writes the block; returns its length.
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`]; [`ErrorKind::InvalidField`] when DS is too long for BL.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let bl = u16::try_from(6 + self.data.len()).map_err(|_| {
            Error::new(
                Layer::Application,
                0,
                ErrorKind::InvalidField("SITP block too long"),
            )
        })?;
        let mut w = Writer::new(out, Layer::Application);
        w.put(&bl.to_le_bytes())?;
        w.put(&[
            self.block_id,
            self.control.0,
            self.recipient,
            self.data_info.0,
            self.header1,
            self.header2,
        ])?;
        w.put(self.data)?;
        Ok(w.position())
    }
}

/// The blocks of an application layer (after the 2F2F check bytes, padding removed), in
/// order; BL = 0000h or the end of the input ends the list; after an error the iterator
/// ends.
#[derive(Debug, Clone)]
pub struct Blocks<'a> {
    rest: &'a [u8],
    base: usize,
    offset: usize,
    done: bool,
}

impl<'a> Blocks<'a> {
    /// Blocks of `apl`, whose first byte is at `base` for error offsets.
    pub const fn new(apl: &'a [u8], base: usize) -> Self {
        Self {
            rest: apl,
            base,
            offset: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Result<Block<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        let at = self.base + self.offset;
        let fail = |s: &mut Self, kind| {
            s.done = true;
            Some(Err(Error::new(Layer::Application, at, kind)))
        };
        let [b0, b1, rest @ ..] = self.rest else {
            return fail(
                self,
                ErrorKind::Truncated {
                    needed: 2,
                    available: self.rest.len(),
                },
            );
        };
        let bl = usize::from(u16::from_le_bytes([*b0, *b1]));
        if bl == 0 {
            self.done = true;
            return None;
        }
        if bl < 6 {
            return fail(
                self,
                ErrorKind::InvalidField("SITP block length below its header"),
            );
        }
        let Some((body, after)) = rest.split_at_checked(bl) else {
            return fail(
                self,
                ErrorKind::Truncated {
                    needed: bl,
                    available: rest.len(),
                },
            );
        };
        let [bid, bcf, recipient, dsi, dsh1, dsh2, data @ ..] = body else {
            return fail(
                self,
                ErrorKind::Truncated {
                    needed: 6,
                    available: body.len(),
                },
            );
        };
        self.rest = after;
        self.offset += 2 + bl;
        Some(Ok(Block {
            offset: at,
            block_id: *bid,
            control: BlockControl(*bcf),
            recipient: *recipient,
            data_info: DataInfo(*dsi),
            header1: *dsh1,
            header2: *dsh2,
            data,
        }))
    }
}

/// End-to-end secured application data with a CMAC (BCF 20h, DSI 32h/33h; addendum §5,
/// N.12.2): `KeyCounter(4 LE) ‖ TargetTime(5 LE) ‖ PID ‖ APDU ‖ MAC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecuredData<'a> {
    /// The key's counter.
    pub key_counter: u32,
    /// TargetTime (5 bytes).
    pub target_time: u64,
    /// Protocol: 01 M-Bus APDU, 04 clock, 06 image transfer (EN Table A.14).
    pub protocol: u8,
    /// The protocol's data.
    pub apdu: &'a [u8],
    /// The MAC (8 or 16 bytes).
    pub mac: &'a [u8],
}

impl<'a> SecuredData<'a> {
    /// Reads DS of DSI 32h (MAC 8 bytes) or 33h (16).
    ///
    /// # Errors
    /// Another DSI; DS shorter than its fixed parts.
    pub fn parse(block: &Block<'a>) -> Result<Self> {
        let mac_len = block.data_info.cmac_len().ok_or(Error::new(
            Layer::Application,
            block.offset,
            ErrorKind::InvalidField("DSI: not CMAC-secured application data"),
        ))?;
        let ds = block.data;
        let fixed = 4 + 5 + 1 + mac_len;
        if ds.len() < fixed {
            return Err(Error::truncated(
                Layer::Application,
                block.offset + 8,
                fixed,
                ds.len(),
            ));
        }
        let (head, mac) = ds.split_at(ds.len() - mac_len);
        let [c0, c1, c2, c3, t0, t1, t2, t3, t4, protocol, apdu @ ..] = head else {
            return Err(Error::truncated(
                Layer::Application,
                block.offset + 8,
                fixed,
                ds.len(),
            ));
        };
        Ok(Self {
            key_counter: u32::from_le_bytes([*c0, *c1, *c2, *c3]),
            target_time: u64::from_le_bytes([*t0, *t1, *t2, *t3, *t4, 0, 0, 0]),
            protocol: *protocol,
            apdu,
            mac,
        })
    }

    /// The bytes the MAC covers: `KeyCounter ‖ TargetTime ‖ PID ‖ APDU` (written to `out`;
    /// returns the length).
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`].
    pub fn mac_input(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out, Layer::Application);
        w.put(&self.key_counter.to_le_bytes())?;
        w.put(self.target_time.to_le_bytes().get(..5).unwrap_or(&[]))?;
        w.put(&[self.protocol])?;
        w.put(self.apdu)?;
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> std::vec::Vec<u8> {
        hex::decode(s).unwrap_or_default()
    }

    /// OMS Annex N N.12.2: the breaker command's decrypted application layer.
    #[test]
    fn n122_block() {
        let apl = unhex("2f2f1c000020003220000f00000000000000300101fd1f00fa41e2812d449b4d");
        let blocks: std::vec::Vec<_> = Blocks::new(&apl[2..], 2).collect();
        assert_eq!(blocks.len(), 1);
        let b = blocks[0].unwrap();
        assert_eq!(
            (b.block_id, b.control, b.recipient),
            (0, BlockControl::SECURED_DATA, 0)
        );
        assert_eq!(
            (b.data_info, b.header1, b.header2),
            (DataInfo::CMAC8, 0x20, 0x00)
        );
        let s = SecuredData::parse(&b).unwrap();
        assert_eq!(s.key_counter, 15);
        assert_eq!(s.target_time, TARGET_TIME_IMMEDIATE);
        assert_eq!((s.protocol, s.apdu), (0x01, &unhex("01fd1f00")[..]));
        assert_eq!(s.mac, &unhex("fa41e2812d449b4d")[..]);
        let mut input = [0u8; 64];
        let n = s.mac_input(&mut input).unwrap();
        assert_eq!(&input[..n], &unhex("0f00000000000000300101fd1f00")[..]);
        let mut out = [0u8; 64];
        let n = b.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &apl[2..]);
    }

    /// N.12.4: the error response, status 19h, then the mode-7 padding (removed by the
    /// security layer; here by hand).
    #[test]
    fn n124_status() {
        let apl = unhex("2f2f070000a000222000190505050505");
        let body = &apl[2..apl.len() - 5];
        let b = Blocks::new(body, 2).next().unwrap().unwrap();
        assert!(b.control.is_response());
        assert_eq!(b.control, BlockControl::SECURED_DATA.response());
        assert_eq!(b.data_info, DataInfo::STATUS);
        assert_eq!(status_name(b.data[0]), "unknown_key_id_or_version");
    }

    #[test]
    fn malformed_blocks() {
        let e = Blocks::new(&[0x09, 0x00, 1, 2], 10)
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.offset, 10);
        assert!(Blocks::new(&[0x02, 0x00, 1, 2], 0).next().unwrap().is_err());
        assert!(Blocks::new(&[0x00, 0x00, 0xFF], 0).next().is_none());
        assert!(Blocks::new(&[0x07], 0).next().unwrap().is_err());
    }
}

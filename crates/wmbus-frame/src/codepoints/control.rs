use core::fmt;

/// C-field: function of the frame (EN 13757-4 §11.4, EN 13757-2 §5.4; digest §1.4).
///
/// Bit 6 is PRM (set on initiating messages), bit 5 FCB/ACD, bit 4 FCV/DFC, bits 3..0 the
/// function code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ControlField(pub u8);

#[allow(missing_docs)]
impl ControlField {
    pub const SND_NKE: Self = Self(0x40);
    pub const SND_UD: Self = Self(0x53);
    pub const SND_UD_FCB: Self = Self(0x73);
    pub const SND_UD2: Self = Self(0x43);
    pub const SND_NR: Self = Self(0x44);
    pub const SND_UD3: Self = Self(0x45);
    pub const SND_IR: Self = Self(0x46);
    pub const ACC_NR: Self = Self(0x47);
    pub const ACC_DMD: Self = Self(0x48);
    pub const REQ_UD1: Self = Self(0x5A);
    pub const REQ_UD1_FCB: Self = Self(0x7A);
    pub const REQ_UD2: Self = Self(0x5B);
    pub const REQ_UD2_FCB: Self = Self(0x7B);
    pub const ACK: Self = Self(0x00);
    pub const NACK: Self = Self(0x01);
    pub const CNF_IR: Self = Self(0x06);
    pub const RSP_UD: Self = Self(0x08);
}

impl ControlField {
    /// PRM: the frame initiates an exchange (bit 6).
    pub const fn is_primary(self) -> bool {
        self.0 & 0x40 != 0
    }

    /// Function code (bits 3..0).
    pub const fn function_code(self) -> u8 {
        self.0 & 0x0F
    }

    /// FCB (primary) or ACD (secondary), bit 5.
    pub const fn fcb_or_acd(self) -> bool {
        self.0 & 0x20 != 0
    }

    /// FCV (primary) or DFC (secondary), bit 4.
    pub const fn fcv_or_dfc(self) -> bool {
        self.0 & 0x10 != 0
    }

    /// The standard's name for the function, e.g. "SND_NR".
    pub const fn name(self) -> Option<&'static str> {
        if self.0 & 0x80 != 0 {
            return None;
        }
        if self.is_primary() {
            Some(match self.0 {
                0x40 => "SND_NKE",
                0x43 => "SND_UD2",
                0x53 | 0x73 => "SND_UD",
                0x44 => "SND_NR",
                0x45 | 0x55 => "SND_UD3",
                0x46 => "SND_IR",
                0x47 => "ACC_NR",
                0x48 => "ACC_DMD",
                0x5A | 0x7A => "REQ_UD1",
                0x5B | 0x7B => "REQ_UD2",
                _ => return None,
            })
        } else {
            Some(match self.function_code() {
                0x0 => "ACK",
                0x1 => "NACK",
                0x6 if self.0 == 0x06 => "CNF_IR",
                0x8 => "RSP_UD",
                _ => return None,
            })
        }
    }
}

impl fmt::Debug for ControlField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "ControlField({n}, {:02X}h)", self.0),
            None => write!(f, "ControlField({:02X}h)", self.0),
        }
    }
}

impl fmt::Display for ControlField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{:02X}h", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(ControlField(0x44).name(), Some("SND_NR"));
        assert_eq!(ControlField(0x73).name(), Some("SND_UD"));
        assert_eq!(ControlField(0x7B).name(), Some("REQ_UD2"));
        assert_eq!(ControlField(0x08).name(), Some("RSP_UD"));
        assert_eq!(ControlField(0x18).name(), Some("RSP_UD"));
        assert_eq!(ControlField(0x06).name(), Some("CNF_IR"));
        assert_eq!(ControlField(0x4F).name(), None);
    }
}

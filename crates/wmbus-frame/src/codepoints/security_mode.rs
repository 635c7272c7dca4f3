use core::fmt;

/// Security mode number, configuration field bits 12..8 (EN 13757-7:2018 Table 19; digest §5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SecurityMode(pub u8);

#[allow(missing_docs)]
impl SecurityMode {
    pub const NONE: Self = Self(0);
    pub const MANUFACTURER: Self = Self(1);
    pub const DES_CBC_IV_ZERO: Self = Self(2);
    pub const DES_CBC: Self = Self(3);
    pub const AES_CBC_IV: Self = Self(5);
    pub const AES_CBC_EPHEMERAL: Self = Self(7);
    pub const AES_CTR_CMAC: Self = Self(8);
    pub const AES_GCM: Self = Self(9);
    pub const AES_CCM: Self = Self(10);
    pub const TLS: Self = Self(13);
}

impl SecurityMode {
    /// A short description of the mode.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "no encryption",
            1 => "manufacturer specific",
            2 => "DES-CBC, IV 0 (deprecated)",
            3 => "DES-CBC (deprecated)",
            4 => "specific usage",
            5 => "AES-128-CBC, IV from address and access number",
            7 => "AES-128-CBC, IV 0, ephemeral key, AFL CMAC",
            8 => "AES-128-CTR with CMAC",
            9 => "AES-128-GCM",
            10 => "AES-128-CCM",
            13 => "TLS",
            15 => "specific usage",
            _ => "reserved",
        }
    }
}

impl fmt::Debug for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecurityMode({}, {})", self.0, self.name())
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

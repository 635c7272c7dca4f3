use core::fmt;

/// Header class of a transport layer (EN 13757-7 §7.2, digest §4.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TplHeaderKind {
    /// No header: the application layer follows the CI directly.
    None,
    /// Short header: `ACC ‖ STS ‖ CF [‖ CFE …]`.
    Short,
    /// Long header: `ID(4) ‖ M(2) ‖ Version ‖ Type ‖ ACC ‖ STS ‖ CF [‖ CFE …]`.
    Long,
}

/// What a CI-field starts (EN 13757-7:2018 Table 2, as tabulated in digest §2).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiKind {
    /// Extended link layer I (8Ch): CC, ACC.
    EllI,
    /// Extended link layer II (8Dh): CC, ACC, SN, PayloadCRC.
    EllII,
    /// Extended link layer III (8Eh): CC, ACC, M2, A2.
    EllIII,
    /// Extended link layer IV (8Fh): CC, ACC, M2, A2, SN, PayloadCRC.
    EllIV,
    /// Extended link layer V (86h): selectable fields; no public layout.
    EllV,
    /// Authentication and fragmentation sublayer (90h).
    Afl,
    /// A transport layer with the given header, followed by the application layer.
    Transport(TplHeaderKind),
    /// A layer this stack has no layout for (network layer, network management, reserved).
    Unsupported,
}

/// What the application layer behind a transport CI contains.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationContent {
    /// M-Bus data records (EN 13757-3): responses, commands, time synchronisation.
    Records,
    /// Compact frame: format signature, data CRC and record data without DIF/VIF (EN 13757-3 §5.6).
    Compact,
    /// Format frame: format signature and the DIF/VIF list of a compact frame.
    Format,
    /// Alarm status (one byte or more).
    Alarm,
    /// Application error status.
    ApplicationError,
    /// No application layer.
    Empty,
    /// Image transfer (EN 13757-3:2018 Annex I).
    ImageTransfer,
    /// Security information transfer (EN 13757-7 Annex A).
    SecurityInformation,
    /// Time synchronisation: `TC ‖ time ‖ reserved` (CI 6Ch absolute, 6Dh relative).
    TimeSync,
    /// Anything else: DLMS/COSEM, OBIS, TLS records, manufacturer specific, baud rate.
    Opaque,
}

/// CI-field: control information, naming the layer that follows (EN 13757-7:2018 Table 2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CiField(pub u8);

#[allow(missing_docs)]
impl CiField {
    pub const APPLICATION_RESET: Self = Self(0x50);
    pub const COMMAND_NO_HEADER: Self = Self(0x51);
    pub const SELECTION: Self = Self(0x52);
    pub const APPLICATION_RESET_LONG: Self = Self(0x53);
    pub const COMMAND_SHORT: Self = Self(0x5A);
    pub const COMMAND_LONG: Self = Self(0x5B);
    pub const TIME_SYNC_ABSOLUTE: Self = Self(0x6C);
    pub const TIME_SYNC_RELATIVE: Self = Self(0x6D);
    pub const APPLICATION_ERROR_SHORT: Self = Self(0x6E);
    pub const APPLICATION_ERROR_LONG: Self = Self(0x6F);
    pub const APPLICATION_ERROR_NO_HEADER: Self = Self(0x70);
    pub const ALARM_NO_HEADER: Self = Self(0x71);
    pub const RESPONSE_LONG: Self = Self(0x72);
    pub const COMPACT_LONG: Self = Self(0x73);
    pub const ALARM_SHORT: Self = Self(0x74);
    pub const ALARM_LONG: Self = Self(0x75);
    pub const RESPONSE_NO_HEADER: Self = Self(0x78);
    pub const COMPACT_NO_HEADER: Self = Self(0x79);
    pub const RESPONSE_SHORT: Self = Self(0x7A);
    pub const COMPACT_SHORT: Self = Self(0x7B);
    pub const TPL_TO_DEVICE_LONG: Self = Self(0x80);
    pub const ELL_V: Self = Self(0x86);
    pub const TPL_FROM_DEVICE_SHORT: Self = Self(0x8A);
    pub const TPL_FROM_DEVICE_LONG: Self = Self(0x8B);
    pub const ELL_I: Self = Self(0x8C);
    pub const ELL_II: Self = Self(0x8D);
    pub const ELL_III: Self = Self(0x8E);
    pub const ELL_IV: Self = Self(0x8F);
    pub const AFL: Self = Self(0x90);
    pub const IMAGE_TRANSFER_COMMAND: Self = Self(0xC0);
    pub const IMAGE_TRANSFER_RESPONSE_SHORT: Self = Self(0xC1);
    pub const IMAGE_TRANSFER_RESPONSE_LONG: Self = Self(0xC2);
    pub const SITP_COMMAND: Self = Self(0xC3);
    pub const SITP_RESPONSE_SHORT: Self = Self(0xC4);
    pub const SITP_RESPONSE_LONG: Self = Self(0xC5);
}

impl CiField {
    /// The layer this CI starts.
    pub const fn kind(self) -> CiKind {
        match self.0 {
            0x8C => CiKind::EllI,
            0x8D => CiKind::EllII,
            0x8E => CiKind::EllIII,
            0x8F => CiKind::EllIV,
            0x86 => CiKind::EllV,
            0x90 => CiKind::Afl,
            _ => match self.info() {
                Some((header, _, _)) => CiKind::Transport(header),
                None => CiKind::Unsupported,
            },
        }
    }

    /// Header class, application content and description of a transport-layer CI.
    ///
    /// 52h (wired slave selection) follows EN 13757-3; C6h/C7h (the wireless alternatives for
    /// the SITP and image-transfer commands in OMS Annex M) are read as short headers, which is
    /// provisional (`docs/architecture.md`).
    pub const fn info(self) -> Option<(TplHeaderKind, ApplicationContent, &'static str)> {
        use ApplicationContent as C;
        use TplHeaderKind::{Long, None as No, Short};
        Some(match self.0 {
            0x00..=0x1F => (No, C::Opaque, "DLMS-based application"),
            0x50 => (No, C::Records, "application reset or select"),
            0x51 => (No, C::Records, "command to device"),
            0x52 => (No, C::Records, "selection of devices"),
            0x53 => (Long, C::Records, "application reset or select"),
            0x5A => (Short, C::Records, "command to device"),
            0x5B => (Long, C::Records, "command to device"),
            0x5C => (No, C::Records, "synchronise action"),
            0x5F | 0x9F => (Long, C::Opaque, "TLS transport (security mode 13)"),
            0x9E => (Short, C::Opaque, "TLS transport (security mode 13)"),
            0x60 => (Long, C::Opaque, "DLMS/COSEM to device"),
            0x61 => (Short, C::Opaque, "DLMS/COSEM to device"),
            0x64 => (Long, C::Opaque, "OBIS-type descriptors to device"),
            0x65 => (Short, C::Opaque, "OBIS-type descriptors to device"),
            0x66 => (No, C::Records, "selected-application response"),
            0x67 => (Short, C::Records, "selected-application response"),
            0x68 => (Long, C::Records, "selected-application response"),
            0x69 => (No, C::Format, "response in format frame"),
            0x6A => (Short, C::Format, "response in format frame"),
            0x6B => (Long, C::Format, "response in format frame"),
            0x6C => (Long, C::TimeSync, "time synchronisation (absolute)"),
            0x6D => (Long, C::TimeSync, "time synchronisation (relative)"),
            0x6E => (Short, C::ApplicationError, "application error"),
            0x6F => (Long, C::ApplicationError, "application error"),
            0x70 => (No, C::ApplicationError, "application error"),
            0x71 => (No, C::Alarm, "alarm"),
            0x72 => (Long, C::Records, "response with data records"),
            0x73 => (Long, C::Compact, "compact frame"),
            0x74 => (Short, C::Alarm, "alarm"),
            0x75 => (Long, C::Alarm, "alarm"),
            0x78 => (No, C::Records, "response with data records"),
            0x79 => (No, C::Compact, "compact frame"),
            0x7A => (Short, C::Records, "response with data records"),
            0x7B => (Short, C::Compact, "compact frame"),
            0x7C => (Long, C::Opaque, "DLMS/COSEM from device"),
            0x7D => (Short, C::Opaque, "DLMS/COSEM from device"),
            0x7E => (Long, C::Opaque, "OBIS-type descriptors from device"),
            0x7F => (Short, C::Opaque, "OBIS-type descriptors from device"),
            0x80 => (Long, C::Empty, "transport layer to device"),
            0x84 => (
                Long,
                C::Empty,
                "transport layer to device, compact frame expected",
            ),
            0x85 => (
                Long,
                C::Empty,
                "transport layer to device, format frame expected",
            ),
            0x8A => (Short, C::Empty, "transport layer from device"),
            0x8B => (Long, C::Empty, "transport layer from device"),
            0xA0..=0xB7 => (No, C::Opaque, "manufacturer specific"),
            0xB8..=0xBF => (No, C::Empty, "set baud rate"),
            0xC0 => (Long, C::ImageTransfer, "image transfer command"),
            0xC1 => (Short, C::ImageTransfer, "image transfer response"),
            0xC2 => (Long, C::ImageTransfer, "image transfer response"),
            0xC3 => (
                Long,
                C::SecurityInformation,
                "security information transfer command",
            ),
            0xC4 => (
                Short,
                C::SecurityInformation,
                "security information transfer response",
            ),
            0xC5 => (
                Long,
                C::SecurityInformation,
                "security information transfer response",
            ),
            0xC6 => (
                Short,
                C::SecurityInformation,
                "security information transfer command",
            ),
            0xC7 => (Short, C::ImageTransfer, "image transfer command"),
            _ => return None,
        })
    }

    /// Header class for a transport CI, `None` for other CIs.
    pub const fn tpl_header(self) -> Option<TplHeaderKind> {
        match self.info() {
            Some((h, _, _)) => Some(h),
            None => None,
        }
    }

    /// Application content behind a transport CI.
    pub const fn content(self) -> Option<ApplicationContent> {
        match self.info() {
            Some((_, c, _)) => Some(c),
            None => None,
        }
    }

    /// A short description, e.g. "response with data records".
    pub const fn description(self) -> &'static str {
        match self.0 {
            0x8C => "ELL I",
            0x8D => "ELL II",
            0x8E => "ELL III",
            0x8F => "ELL IV",
            0x86 => "ELL V",
            0x90 => "AFL",
            0x81 => "network layer",
            0x82 | 0x83 | 0x87 | 0x88 | 0x89 => "network management",
            _ => match self.info() {
                Some((_, _, d)) => d,
                None => "reserved",
            },
        }
    }
}

impl fmt::Debug for CiField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CiField({:02X}h, {})", self.0, self.description())
    }
}

impl fmt::Display for CiField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X}h", self.0)
    }
}

//! Security modes outside this crate: EN 13757-7 Table 19 gives modes 4 and 15 to "specific
//! usage" and leaves 6, 11, 12, 14 and 16–31 reserved; national profiles and vendors fill
//! them. A [`NationalMode`] handler registered for such a number is called to open those
//! telegrams. Which numbers count as available is this module's reading
//! (`docs/security-modes.md`, provisional).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use wmbus_frame::codepoints::MeterAddress;
use wmbus_frame::tpl::TplHeader;

use crate::key::{Key, KeyRequest, KeyStore};

/// Mode numbers a handler may be registered for.
pub const fn is_available(mode: u8) -> bool {
    matches!(mode, 4 | 6 | 11 | 12 | 14 | 15 | 16..=31)
}

/// What a handler gets.
pub struct NationalRequest<'a> {
    /// The meter (long transport header, else link layer).
    pub meter: MeterAddress,
    /// The transport header.
    pub header: &'a TplHeader,
    /// The transport layer from CI up to the payload, as received.
    pub tpl_bytes: &'a [u8],
    /// The payload after the transport header; decrypt in place.
    pub payload: &'a mut [u8],
    /// Key lookup.
    pub keys: &'a dyn Fn(&KeyRequest) -> Option<Key>,
}

impl fmt::Debug for NationalRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NationalRequest")
            .field("meter", &self.meter)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NationalResult {
    /// The application data is `payload[range]`; `authenticated` says whether a MAC or tag
    /// verified (otherwise only check bytes did).
    Opened {
        /// Application data within the payload.
        range: core::ops::Range<usize>,
        /// A MAC or tag verified.
        authenticated: bool,
    },
    /// No key for this meter.
    NoKey,
    /// MAC, tag or check bytes failed.
    AuthenticationFailed,
}

/// A handler for one security mode number.
pub trait NationalMode: Send + Sync {
    /// The mode number it handles.
    fn mode(&self) -> u8;
    /// A name for reports.
    fn name(&self) -> &'static str;
    /// Opens one telegram. Must verify before it decrypts anything it returns.
    fn open(&self, request: NationalRequest<'_>) -> NationalResult;
}

/// The registered handlers.
#[derive(Default)]
pub struct Registry {
    handlers: Vec<Box<dyn NationalMode>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.handlers.iter().map(|h| (h.mode(), h.name())))
            .finish()
    }
}

/// A handler was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// The mode number is one this crate implements or the standard assigns.
    NotAvailable(u8),
    /// A handler for it exists already.
    Taken(u8),
}

impl Registry {
    /// Registers a handler.
    ///
    /// # Errors
    /// [`RegisterError`] when the mode is not available or already taken.
    pub fn register(&mut self, handler: Box<dyn NationalMode>) -> Result<(), RegisterError> {
        let mode = handler.mode();
        if !is_available(mode) {
            return Err(RegisterError::NotAvailable(mode));
        }
        if self.get(mode).is_some() {
            return Err(RegisterError::Taken(mode));
        }
        self.handlers.push(handler);
        Ok(())
    }

    /// The handler for a mode.
    pub fn get(&self, mode: u8) -> Option<&dyn NationalMode> {
        self.handlers
            .iter()
            .find(|h| h.mode() == mode)
            .map(AsRef::as_ref)
    }
}

pub(crate) fn lookup<K: KeyStore>(keys: &K) -> impl Fn(&KeyRequest) -> Option<Key> + '_ {
    move |r| keys.key(r).cloned()
}

//! AFL fragment reassembly and splitting (EN 13757-7 §6.4; OMS Annex N N.3–N.5; addendum §4).
//!
//! Fragments are numbered 1, 2, … (FID); MF is set on every fragment but the last. MCL, KI,
//! MCR and ML travel only in the first fragment, the MAC only in the last. The message is the
//! fragments' payloads concatenated in FID order; ML, when present, gives its length. The MAC
//! is then computed over the whole message with the first fragment's MCL/KI/MCR/ML.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use wmbus_frame::afl::{AflRepr, KeyInformation, MessageControl};

use crate::time::{Duration, Instant};

/// Bounds on what the reassembler keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Longest message accepted (bytes after the AFL, reassembled).
    pub max_len: usize,
    /// Most fragments per message.
    pub max_fragments: u8,
    /// An incomplete message is dropped this long after its first fragment.
    pub timeout: Duration,
    /// Most messages under reassembly at once (the oldest is dropped beyond).
    pub max_pending: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_len: 4096,
            max_fragments: 64,
            timeout: Duration::from_secs(60),
            max_pending: 256,
        }
    }
}

/// The authentication fields of a message, owned: the first fragment's MCL/KI/MCR/ML and the
/// last fragment's MAC (or an unfragmented AFL's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AflAuth {
    /// MCL.
    pub message_control: Option<MessageControl>,
    /// KI.
    pub key_information: Option<KeyInformation>,
    /// MCR.
    pub message_counter: Option<u32>,
    /// ML.
    pub message_length: Option<u16>,
    /// MAC bytes (first `mac_len` are valid).
    pub mac: [u8; 16],
    /// MAC length, 0 when absent.
    pub mac_len: usize,
    /// FID of the fragment the fields were taken from (last one for the MAC).
    pub fragment_id: u8,
    /// MF of that fragment.
    pub more_fragments: bool,
    /// Number of fragments the message came in (1 when unfragmented).
    pub fragments: u8,
}

impl AflAuth {
    /// The fields of one AFL.
    pub fn from_repr(afl: &AflRepr<'_>) -> Self {
        let mut out = Self {
            message_control: afl.message_control,
            key_information: afl.key_information,
            message_counter: afl.message_counter,
            message_length: afl.message_length,
            fragment_id: afl.fragment_id,
            more_fragments: afl.more_fragments,
            fragments: 1,
            ..Self::default()
        };
        out.set_mac(afl.mac);
        out
    }

    fn set_mac(&mut self, mac: Option<&[u8]>) {
        if let Some(m) = mac {
            let n = m.len().min(16);
            if let (Some(dst), Some(src)) = (self.mac.get_mut(..n), m.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.mac_len = n;
        }
    }

    /// The MAC as received, if any.
    pub fn mac(&self) -> Option<&[u8]> {
        (self.mac_len > 0).then(|| self.mac.get(..self.mac_len).unwrap_or(&[]))
    }
}

/// Why a fragment was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// A later fragment arrived with no first fragment pending.
    FirstMissing {
        /// Its FID.
        fragment_id: u8,
    },
    /// A fragment already received arrived again; it is ignored.
    Duplicate {
        /// Its FID.
        fragment_id: u8,
    },
    /// A fragment is missing: the set is dropped.
    Missing {
        /// The FID expected next.
        expected: u8,
        /// The FID that arrived.
        received: u8,
    },
    /// The message grew beyond the length or fragment bounds: the set is dropped.
    TooLong,
    /// The reassembled length differs from ML: the set is dropped.
    LengthMismatch {
        /// ML of the first fragment.
        declared: u16,
        /// Bytes reassembled.
        actual: usize,
    },
    /// The set was dropped because it took too long.
    TimedOut,
}

impl core::fmt::Display for FragmentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::FirstMissing { fragment_id } => {
                write!(
                    f,
                    "fragment {fragment_id} arrived without its first fragment"
                )
            }
            Self::Duplicate { fragment_id } => write!(f, "fragment {fragment_id} arrived twice"),
            Self::Missing { expected, received } => write!(
                f,
                "fragment {expected} is missing (fragment {received} arrived); message dropped"
            ),
            Self::TooLong => f.write_str("message exceeds the reassembly bounds; dropped"),
            Self::LengthMismatch { declared, actual } => write!(
                f,
                "reassembled {actual} bytes, ML says {declared}; message dropped"
            ),
            Self::TimedOut => f.write_str("incomplete message timed out"),
        }
    }
}

/// What pushing a fragment gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentOutcome {
    /// Kept; more fragments are awaited.
    Buffered {
        /// FID just stored.
        fragment_id: u8,
        /// Bytes gathered so far.
        received: usize,
        /// ML, when the first fragment gave it.
        expected: Option<u16>,
    },
    /// The last fragment arrived: the whole message.
    Complete(Reassembled),
}

/// A reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The merged authentication fields.
    pub auth: AflAuth,
    /// The message after the AFL: transport layer onwards.
    pub message: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Pending {
    started: Instant,
    next: u8,
    auth: AflAuth,
    data: Vec<u8>,
}

/// Reassembles fragmented messages per sender (the key `K` is the caller's: link address and
/// direction, say). Sans-IO: time comes in with every call.
#[derive(Debug, Clone)]
pub struct Reassembler<K: Ord> {
    pending: BTreeMap<K, Pending>,
    limits: ReassemblyLimits,
}

impl<K: Ord + Clone> Reassembler<K> {
    /// A reassembler with these bounds.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self {
            pending: BTreeMap::new(),
            limits,
        }
    }

    /// Messages under reassembly.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the oldest pending message times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.started + self.limits.timeout)
            .min()
    }

    /// Drops messages that timed out by `now`; returns how many.
    pub fn handle_timeout(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        let timeout = self.limits.timeout;
        self.pending.retain(|_, p| now < p.started + timeout);
        before - self.pending.len()
    }

    /// Adds one fragment: its AFL and the bytes after the AFL.
    ///
    /// # Errors
    /// A [`FragmentError`]; except for a duplicate, the pending message is dropped.
    pub fn push(
        &mut self,
        now: Instant,
        key: K,
        afl: &AflRepr<'_>,
        payload: &[u8],
    ) -> Result<FragmentOutcome, FragmentError> {
        let timeout = self.limits.timeout;
        if self
            .pending
            .get(&key)
            .is_some_and(|p| now >= p.started + timeout)
        {
            self.pending.remove(&key);
            if afl.fragment_id != 1 {
                return Err(FragmentError::TimedOut);
            }
        }
        let fid = afl.fragment_id;
        if fid == 1 {
            if self.pending.len() >= self.limits.max_pending
                && !self.pending.contains_key(&key)
                && let Some(oldest) = self
                    .pending
                    .iter()
                    .min_by_key(|(_, p)| p.started)
                    .map(|(k, _)| k.clone())
            {
                self.pending.remove(&oldest);
            }
            let mut pending = Pending {
                started: now,
                next: 2,
                auth: AflAuth::from_repr(afl),
                data: Vec::new(),
            };
            pending.auth.mac_len = 0;
            self.pending.insert(key.clone(), pending);
        }
        let Some(p) = self.pending.get_mut(&key) else {
            return Err(FragmentError::FirstMissing { fragment_id: fid });
        };
        if fid != 1 {
            if fid < p.next {
                return Err(FragmentError::Duplicate { fragment_id: fid });
            }
            if fid > p.next {
                let expected = p.next;
                self.pending.remove(&key);
                return Err(FragmentError::Missing {
                    expected,
                    received: fid,
                });
            }
            p.next = p.next.saturating_add(1);
        }
        p.auth.fragments = fid;
        let too_long = p.data.len() + payload.len() > self.limits.max_len
            || fid > self.limits.max_fragments
            || p.auth
                .message_length
                .is_some_and(|ml| p.data.len() + payload.len() > usize::from(ml));
        if too_long {
            self.pending.remove(&key);
            return Err(FragmentError::TooLong);
        }
        p.data.extend_from_slice(payload);
        if afl.more_fragments {
            return Ok(FragmentOutcome::Buffered {
                fragment_id: fid,
                received: p.data.len(),
                expected: p.auth.message_length,
            });
        }
        let Some(mut done) = self.pending.remove(&key) else {
            return Err(FragmentError::FirstMissing { fragment_id: fid });
        };
        if let Some(ml) = done.auth.message_length
            && usize::from(ml) != done.data.len()
        {
            return Err(FragmentError::LengthMismatch {
                declared: ml,
                actual: done.data.len(),
            });
        }
        done.auth.set_mac(afl.mac);
        done.auth.fragment_id = fid;
        done.auth.more_fragments = false;
        Ok(FragmentOutcome::Complete(Reassembled {
            auth: done.auth,
            message: done.data,
        }))
    }
}

/// One fragment of a split message: its AFL fields and its share of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// FID (from 1).
    pub fragment_id: u8,
    /// MF.
    pub more_fragments: bool,
    /// Byte range of the message this fragment carries.
    pub range: core::ops::Range<usize>,
}

/// Splits a message of `len` bytes into fragments carrying at most `sizes[i]` bytes each
/// (the last size repeats). Returns `None` when more than 255 fragments would be needed or a
/// size is 0.
pub fn split(len: usize, sizes: &[usize]) -> Option<Vec<Fragment>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0usize;
    while start < len || out.is_empty() {
        let size = *sizes.get(i).or(sizes.last())?;
        if size == 0 {
            return None;
        }
        let end = (start + size).min(len);
        let fid = u8::try_from(i + 1).ok()?;
        out.push(Fragment {
            fragment_id: fid,
            more_fragments: end < len,
            range: start..end,
        });
        start = end;
        i += 1;
    }
    Some(out)
}

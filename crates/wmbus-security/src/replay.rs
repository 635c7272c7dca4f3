//! Replay protection (digest §10, addendum §7): per meter, key and direction, the highest
//! message counter accepted. A counter is accepted only if it is strictly greater and only
//! after its MAC or tag verified; a rejected message never moves the stored value.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt::Write as _;

use wmbus_frame::codepoints::{Ident, ManufacturerCode};

use crate::kdf::Direction;

/// Whose counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterKey {
    /// The meter's manufacturer.
    pub manufacturer: ManufacturerCode,
    /// The meter's identification number.
    pub ident: Ident,
    /// Key ID the counter belongs to.
    pub key_id: u8,
    /// Direction (meter and partner count separately).
    pub direction: Direction,
}

/// A counter that is not greater than the last one accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// The counter received.
    pub counter: u32,
    /// The highest counter accepted before.
    pub last: u32,
}

/// The highest accepted counter per [`CounterKey`].
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    last: BTreeMap<CounterKey, u32>,
    generation: u64,
}

/// Two guards are equal when they keep the same counters (however they got there).
impl PartialEq for ReplayGuard {
    fn eq(&self, other: &Self) -> bool {
        self.last == other.last
    }
}

impl Eq for ReplayGuard {}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a counter without accepting it.
    ///
    /// # Errors
    /// [`Replayed`] when the counter is not greater than the last one accepted.
    pub fn check(&self, key: &CounterKey, counter: u32) -> Result<(), Replayed> {
        match self.last.get(key) {
            Some(&last) if counter <= last => Err(Replayed { counter, last }),
            _ => Ok(()),
        }
    }

    /// Records an accepted counter (call only after the MAC verified).
    pub fn accept(&mut self, key: CounterKey, counter: u32) {
        match self.last.get_mut(&key) {
            Some(slot) if counter <= *slot => return,
            Some(slot) => *slot = counter,
            None => {
                self.last.insert(key, counter);
            }
        }
        self.generation += 1;
    }

    /// Forgets a key's counter (after a key change that resets it).
    pub fn reset(&mut self, key: &CounterKey) {
        if self.last.remove(key).is_some() {
            self.generation += 1;
        }
    }

    /// A number that grows whenever a counter is stored or forgotten: whoever persists the
    /// state compares it with the value at the last save.
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// The last accepted counter.
    pub fn last(&self, key: &CounterKey) -> Option<u32> {
        self.last.get(key).copied()
    }

    /// Number of counters kept.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// Every counter kept.
    pub fn iter(&self) -> impl Iterator<Item = (&CounterKey, &u32)> {
        self.last.iter()
    }

    /// The state as text, one counter per line: `MFR ident key_id direction counter`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.last {
            let _ = writeln!(
                s,
                "{} {} {} {} {}",
                k.manufacturer,
                k.ident,
                k.key_id,
                k.direction.name(),
                v
            );
        }
        s
    }

    /// Reads the state written by [`Self::to_text`]; lines that do not parse are skipped and
    /// counted in the second value.
    pub fn from_text(text: &str) -> (Self, usize) {
        let mut guard = Self::new();
        let mut bad = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some((k, v)) => guard.accept(k, v),
                None => bad += 1,
            }
        }
        (guard, bad)
    }
}

fn parse_line(line: &str) -> Option<(CounterKey, u32)> {
    let mut it = line.split_ascii_whitespace();
    let manufacturer = ManufacturerCode::parse(it.next()?)?;
    let ident = Ident::parse(it.next()?)?;
    let key_id = it.next()?.parse().ok()?;
    let direction = match it.next()? {
        "meter_to_partner" => Direction::MeterToPartner,
        "partner_to_meter" => Direction::PartnerToMeter,
        _ => return None,
    };
    let counter = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((
        CounterKey {
            manufacturer,
            ident,
            key_id,
            direction,
        },
        counter,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_greater_and_persisted() {
        let key = CounterKey {
            manufacturer: ManufacturerCode::parse("ZRI").unwrap(),
            ident: Ident(0x1234_5678),
            key_id: 0,
            direction: Direction::MeterToPartner,
        };
        let mut g = ReplayGuard::new();
        assert!(g.check(&key, 5).is_ok());
        g.accept(key, 5);
        assert_eq!(
            g.check(&key, 5),
            Err(Replayed {
                counter: 5,
                last: 5
            })
        );
        assert!(g.check(&key, 4).is_err());
        assert!(g.check(&key, 6).is_ok());
        g.accept(key, 3); // never rewinds
        assert_eq!(g.last(&key), Some(5));
        let text = g.to_text();
        assert_eq!(text, "ZRI 12345678 0 meter_to_partner 5\n");
        let (back, bad) = ReplayGuard::from_text(&(text + "garbage line\n"));
        assert_eq!(back, g);
        assert_eq!(bad, 1);
    }
}

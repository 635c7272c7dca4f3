//! Application layer (EN 13757-3): data records `DIB ‖ VIB ‖ data`, their units and values,
//! compact frames and compact profiles.
//!
//! - [`dib`]: DIF and DIFE — data field, function, storage number, tariff, subunit;
//! - [`vib`]: VIF and VIFE — the primary table, the FB and FD extension tables, plain-text,
//!   "any" and manufacturer VIFs, and the combinable (orthogonal) VIFEs;
//! - [`value`]: the data types of Annex A (A, B, C, D, F, G, H, I, J, K, L, M, LVAR);
//! - [`record`]: the record grammar (nom) and its emitter;
//! - [`compact`]: format signatures, format frames and compact frames;
//! - [`profile`]: compact profiles (Annex F).

pub mod compact;
pub mod dib;
pub mod profile;
pub mod record;
pub mod value;
pub mod vib;

pub use record::{Item, Record, RecordRepr, Records};

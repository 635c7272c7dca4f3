//! Test support: where `testdata/` is, and loaders for the known-answer vectors kept there.
//!
//! The vectors come from public sources named in each record's `source` field and in
//! `testdata/README.md`; expected values are never our own output.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

pub mod talk;

use serde_json::Value;

/// The workspace's `testdata/` folder.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The shared reference folder `../shared` beside the project, when it exists.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    p.is_dir().then_some(p)
}

/// Reads a JSON-lines file.
pub fn jsonl(path: &std::path::Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `testdata/kat/kat_vectors.jsonl`: CRC, CMAC, KDF, frame formats, OMS/CEN-TR telegrams, ELL
/// CTR, mode 10, real mode-5 meters, DES.
pub fn kat_vectors() -> Vec<Value> {
    jsonl(&testdata().join("kat/kat_vectors.jsonl"))
}

/// `testdata/kat/oms_annex_n.jsonl`: every example datagram of OMS Vol2 Annex N (Release E),
/// plus the ESMR 5 / OSGP GCM and GMAC records at the end.
pub fn oms_vectors() -> Vec<Value> {
    jsonl(&testdata().join("kat/oms_annex_n.jsonl"))
}

/// The vector with this `id`.
pub fn vector(id: &str) -> Value {
    kat_vectors()
        .into_iter()
        .chain(oms_vectors())
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// Hex string to bytes (spaces and case ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).unwrap_or_else(|e| panic!("bad hex {s}: {e}"))
}

/// A field of a vector as bytes, `None` when absent or null.
pub fn hex_field(v: &Value, field: &str) -> Option<Vec<u8>> {
    v.get(field).and_then(Value::as_str).map(hex)
}

/// Uppercase hex.
pub fn to_hex(b: &[u8]) -> String {
    hex::encode_upper(b)
}

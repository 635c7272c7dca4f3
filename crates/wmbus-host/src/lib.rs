//! # wmbus-host
//!
//! The host side of the wmbus stack (std): key files, the decode pipeline that turns one
//! received telegram into a [`report::Report`] (with replay state, fragment reassembly and
//! the compact-frame format cache kept across a run), and the renderers for the JSON,
//! pretty, analyze and CSV views.
#![forbid(unsafe_code)]
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

pub mod decoder;
pub mod direct;
pub mod encode;
pub mod fuzzing;
pub mod input;
pub mod json;
pub mod keyfile;
pub mod partner;
pub mod records;
pub mod render;
pub mod report;
pub mod transfer;
pub mod vectors;

pub use decoder::{DecodeOptions, Decoder, FormatCache, Written};
pub use report::Report;

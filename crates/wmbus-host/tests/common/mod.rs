//! Test data shared by the JSON writer tests: every telegram the repository holds, with the
//! keys and receiver context each comes with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use wmbus_host::encode::Description;
use wmbus_host::input::{Line, parse_line};
use wmbus_host::keyfile;
use wmbus_host::report::{Reception, Source};
use wmbus_security::key::MemoryKeyStore;

/// One telegram of a capture file.
pub(crate) struct Telegram {
    pub(crate) bytes: Vec<u8>,
    pub(crate) reception: Reception,
    pub(crate) source: Source,
    /// Line index from 0 (the decoders' clock in seconds).
    pub(crate) index: usize,
}

/// A capture file: its keys (the store given plus its `# key:` lines) and telegrams.
pub(crate) struct Capture {
    pub(crate) keys: MemoryKeyStore,
    pub(crate) telegrams: Vec<Telegram>,
}

/// The files of `dir` ending in `.ext`, sorted.
pub(crate) fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Every capture file (`.ext`) of `dir`, with `keys` and each file's own.
pub(crate) fn captures(dir: &Path, ext: &str, keys: &MemoryKeyStore) -> Vec<Capture> {
    files(dir, ext)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut k = keys.clone();
            for line in text.lines() {
                if let Some(arg) = line.strip_prefix("# key: ") {
                    keyfile::load_into(&mut k, vec![keyfile::parse_argument(arg).unwrap()]);
                }
            }
            let telegrams = text
                .lines()
                .enumerate()
                .filter_map(|(i, line)| match parse_line(line) {
                    Line::Telegram {
                        bytes, reception, ..
                    } => Some(Telegram {
                        bytes,
                        reception,
                        source: Source {
                            file: Some(path.display().to_string()),
                            line: i + 1,
                        },
                        index: i,
                    }),
                    _ => None,
                })
                .collect();
            Capture { keys: k, telegrams }
        })
        .collect()
}

/// The sample captures' key file.
pub(crate) fn sample_keys() -> MemoryKeyStore {
    let mut keys = MemoryKeyStore::new();
    let text = std::fs::read_to_string(wmbus_testkit::testdata().join("samples/keys.txt")).unwrap();
    keyfile::load_into(&mut keys, keyfile::parse_file(&text, "keys.txt").unwrap());
    keys
}

/// The vector set: each description with its frames.
pub(crate) fn vector_set() -> Vec<(Description, Vec<Vec<u8>>)> {
    files(&wmbus_testkit::testdata().join("vectors"), "hex")
        .into_iter()
        .map(|path| {
            let description =
                Description::parse(&std::fs::read_to_string(path.with_extension("toml")).unwrap())
                    .unwrap();
            let frames = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| hex::decode(l).unwrap())
                .collect();
            (description, frames)
        })
        .collect()
}

/// The key store of a vector's description.
pub(crate) fn vector_keys(description: &Description) -> MemoryKeyStore {
    let mut keys = MemoryKeyStore::new();
    if let Some(k) = description.key.as_deref() {
        keyfile::load_into(
            &mut keys,
            vec![keyfile::parse_entry(&description.meter.id, k, "vector").unwrap()],
        );
    }
    keys
}

/// The fuzz corpora of the telegram-level targets, as telegrams.
pub(crate) fn fuzz_inputs() -> Vec<Vec<u8>> {
    let root = wmbus_testkit::testdata().join("../fuzz/corpus");
    let mut out = Vec::new();
    for target in ["frame_parse", "records", "security_open"] {
        let mut paths: Vec<_> = std::fs::read_dir(root.join(target))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
    }
    out
}

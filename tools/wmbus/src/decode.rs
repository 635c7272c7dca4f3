//! `wmbus decode`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant as StdInstant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use wmbus_frame::dll::FrameFormat;
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::input::{Line, parse_line};
use wmbus_host::keyfile;
use wmbus_host::render::{self, Format};
use wmbus_host::report::{Report, Source};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

/// Output views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// One JSON object per input line.
    Json,
    /// Human view (the default on a terminal).
    Pretty,
    /// Every layer, IV, nonce and MAC.
    Analyze,
    /// One row per record.
    Csv,
}

/// Frame format of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFrameFormat {
    /// Recognise from the length (default).
    Auto,
    /// Format A with CRCs.
    A,
    /// Format B with CRCs.
    B,
    /// No CRCs.
    None,
    /// Wired M-Bus.
    Wired,
}

/// `wmbus decode` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Telegrams as hex; read from stdin (one per line) when none are given and no --input.
    pub telegrams: Vec<String>,
    /// Input file, one telegram per line (hex, rtl_wmbus, rtl_433 JSON, telegram=|…|); `-`
    /// for stdin. Repeatable.
    #[arg(long = "input", short = 'i', value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Output view; `pretty` on a terminal, `json` otherwise.
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<OutputFormat>,
    /// Key file: `<id> <32 hex>` or `<MFR>.<id> <32 hex>` per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// A key, `<id>=<32 hex>` or `<MFR>.<id>=<32 hex>`. Repeatable.
    #[arg(long = "key", value_name = "METER=KEY")]
    pub key: Vec<String>,
    /// Do not reject replayed message counters.
    #[arg(long)]
    pub no_replay_check: bool,
    /// In the analyze view, print derived keys (Kenc, Kmac, Lenc, Lmac).
    #[arg(long)]
    pub show_keys: bool,
    /// Open the deprecated DES modes 2 and 3.
    #[arg(long)]
    pub allow_des: bool,
    /// Refuse payloads a receiver already decrypted even when no key is configured.
    #[arg(long)]
    pub strict: bool,
    /// Frame format of the input.
    #[arg(long, value_enum, default_value = "auto")]
    pub frame_format: InputFrameFormat,
    /// Compact-frame format cache: read at start (if it exists) and written at the end.
    #[arg(long, value_name = "FILE")]
    pub format_cache: Option<PathBuf>,
}

struct Run {
    decoder: Decoder,
    format: Format,
    started: StdInstant,
    failures: usize,
    out: BufWriter<io::Stdout>,
}

impl Run {
    fn emit(&mut self, mut report: Report, source: Source) -> io::Result<()> {
        report.source = Some(source);
        if !report.is_decoded() {
            self.failures += 1;
        }
        render::write(&mut self.out, &report, self.format)
    }

    fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn line(&mut self, text: &str, source: Source) -> io::Result<()> {
        match parse_line(text) {
            Line::Skip => Ok(()),
            Line::Telegram {
                bytes, reception, ..
            } => {
                let mut report = self.decoder.decode(self.now(), &bytes);
                report.reception = reception;
                self.emit(report, source)
            }
            Line::Invalid(reason) => {
                let mut report = self.decoder.decode(self.now(), &[]);
                report.status = "malformed";
                report.error = Some(reason);
                report.frame_hex = String::new();
                self.emit(report, source)
            }
        }
    }

    fn reader(&mut self, reader: impl BufRead, file: &str) -> Result<()> {
        for (i, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("reading {file}"))?;
            self.line(
                &line,
                Source {
                    file: Some(file.to_string()),
                    line: i + 1,
                },
            )?;
        }
        Ok(())
    }
}

fn keys(args: &Args) -> Result<MemoryKeyStore> {
    let mut store = MemoryKeyStore::new();
    for path in &args.keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        if let Some(w) = keyfile::permission_warning(path) {
            eprintln!("{w}");
        }
        let entries = keyfile::parse_file(&text, &path.display().to_string())?;
        keyfile::load_into(&mut store, entries);
    }
    for k in &args.key {
        keyfile::load_into(&mut store, vec![keyfile::parse_argument(k)?]);
    }
    Ok(store)
}

/// Runs `wmbus decode`: exit status 0 when every telegram decoded, 1 when some did not.
///
/// # Errors
/// Usage and I/O errors (exit status 2).
pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let stdout_terminal = io::stdout().is_terminal();
    let format = match args.format.unwrap_or(if stdout_terminal {
        OutputFormat::Pretty
    } else {
        OutputFormat::Json
    }) {
        OutputFormat::Json => Format::Json,
        OutputFormat::Pretty => Format::Pretty,
        OutputFormat::Analyze => Format::Analyze,
        OutputFormat::Csv => Format::Csv,
    };
    if args.show_keys && format != Format::Analyze {
        bail!("--show-keys only applies to --format analyze");
    }
    let options = DecodeOptions {
        replay_check: !args.no_replay_check,
        diagnostics: format == Format::Analyze,
        show_keys: args.show_keys,
        allow_des: args.allow_des,
        accept_decrypted_by_receiver: !args.strict,
        frame_format: match args.frame_format {
            InputFrameFormat::Auto => None,
            InputFrameFormat::A => Some(FrameFormat::A),
            InputFrameFormat::B => Some(FrameFormat::B),
            InputFrameFormat::None => Some(FrameFormat::NoCrc),
            InputFrameFormat::Wired => Some(FrameFormat::Wired),
        },
    };
    let mut decoder = Decoder::new(keys(&args)?, options);
    if let Some(path) = &args.format_cache
        && path.exists()
    {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let bad = decoder.formats_mut().load_text(&text);
        if bad > 0 {
            eprintln!(
                "warning: {bad} invalid line(s) in format cache {}",
                path.display()
            );
        }
    }
    let mut run = Run {
        decoder,
        format,
        started: StdInstant::now(),
        failures: 0,
        out: BufWriter::new(io::stdout()),
    };
    if format == Format::Csv {
        run.out.write_all(render::CSV_HEADER.as_bytes())?;
    }
    for (i, t) in args.telegrams.iter().enumerate() {
        run.line(
            t,
            Source {
                file: None,
                line: i + 1,
            },
        )?;
    }
    for path in &args.inputs {
        if path.as_os_str() == "-" {
            run.reader(io::stdin().lock(), "-")?;
        } else {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            run.reader(BufReader::new(f), &path.display().to_string())?;
        }
    }
    if args.telegrams.is_empty() && args.inputs.is_empty() {
        run.reader(io::stdin().lock(), "-")?;
    }
    run.out.flush()?;
    if let Some(path) = &args.format_cache {
        std::fs::write(path, run.decoder.formats().to_text())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if run.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

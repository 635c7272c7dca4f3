//! `wmbus decode`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IoSlice, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Instant as StdInstant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use wmbus_frame::dll::FrameFormat;
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::input::{Line, parse_line_bytes};
use wmbus_host::keyfile;
use wmbus_host::render::{self, Format};
use wmbus_host::report::Source;
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
    /// Decoding threads (0: one per core). Telegrams of one meter stay on one thread; the
    /// output keeps the input order.
    #[arg(long, short = 'j', default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// No progress bar (shown on stderr for file inputs when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// A worker's lines of a batch, as read: the text one line after another, each line's end in
/// it and its number. Workers parse them (the reading thread only routes).
#[derive(Default)]
struct Share {
    text: Vec<u8>,
    lines: Vec<(usize, usize)>,
}

impl Share {
    fn push(&mut self, text: &[u8], number: usize) {
        self.text.extend_from_slice(text);
        self.lines.push((self.text.len(), number));
    }

    /// The lines: (text, number).
    fn iter(&self) -> impl Iterator<Item = (&[u8], usize)> {
        let mut start = 0;
        self.lines.iter().map(move |&(end, number)| {
            let text = self.text.get(start..end).unwrap_or(&[]);
            start = end;
            (text, number)
        })
    }
}

/// Decodes one line and appends its rendering to `out`; false when it did not decode.
fn render(
    decoder: &mut Decoder,
    now: Instant,
    line: Line,
    source: &Source,
    format: Format,
    out: &mut Vec<u8>,
) -> bool {
    let mut report = match line {
        Line::Skip => return true,
        Line::Telegram {
            bytes, reception, ..
        } if format == Format::Json => {
            return decoder
                .decode_json(now, &bytes, Some(source), &reception, out)
                .decoded;
        }
        Line::Telegram {
            bytes, reception, ..
        } => {
            let mut report = decoder.decode(now, &bytes);
            report.reception = reception;
            report
        }
        Line::Invalid(reason) => {
            let mut report = decoder.decode(now, &[]);
            report.status = "malformed";
            report.error = Some(reason);
            report.frame_hex = String::new();
            report
        }
    };
    report.source = Some(source.clone());
    render::write_line(out, &report, format);
    report.is_decoded()
}

/// Milliseconds since `started`, the decoder's clock (fragment timeouts).
fn since(started: StdInstant) -> Instant {
    Instant::from_millis(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}

/// Lines per batch handed to a worker.
const BATCH: usize = 1024;

/// Output gathered before a write (sequential runs): the stdout buffer's capacity, so the
/// chunk goes to the OS without another copy.
const OUTPUT_CHUNK: usize = 256 * 1024;

/// Work for one worker: its share of a batch, in input order.
struct Job {
    batch: u64,
    /// The file the lines are from (a batch never spans files).
    file: Option<String>,
    lines: Share,
    /// A buffer for the renderings (recycled: allocating a fresh megabyte per job costs
    /// page faults).
    out: Vec<u8>,
}

/// A worker's output for its share of a batch: the renderings, one after another.
struct Done {
    batch: u64,
    worker: usize,
    out: Vec<u8>,
    ends: Vec<usize>,
    failures: usize,
}

/// A batch whose lines are out with the workers.
struct Pending {
    /// The worker of each line, in input order.
    route: Vec<usize>,
    done: Vec<Option<Done>>,
}

/// The decode run: sequential, or `threads` workers each with its own decoder. Lines of one
/// meter always go to the same worker (so its replay counters, fragments and compact formats
/// stay in one place) and the output keeps the input order.
struct Run {
    format: Format,
    failures: usize,
    out: BufWriter<io::Stdout>,
    progress: ProgressBar,
    mode: Mode,
}

enum Mode {
    Sequential {
        decoder: Box<Decoder>,
        started: StdInstant,
        buf: Vec<u8>,
    },
    Parallel {
        jobs: Vec<mpsc::Sender<Job>>,
        results: mpsc::Receiver<Done>,
        handles: Vec<thread::JoinHandle<Decoder>>,
        batch: u64,
        next_to_write: u64,
        route: Vec<usize>,
        shares: Vec<Share>,
        /// The file of the lines being gathered.
        file: Option<String>,
        pending: BTreeMap<u64, Pending>,
        /// Rendering buffers back from the workers, for the next jobs.
        spares: Vec<Vec<u8>>,
    },
}

impl Run {
    fn new(
        make_decoder: &dyn Fn() -> Decoder,
        format: Format,
        threads: usize,
        progress: ProgressBar,
    ) -> Self {
        let mode = if threads <= 1 {
            Mode::Sequential {
                decoder: Box::new(make_decoder()),
                started: StdInstant::now(),
                buf: Vec::with_capacity(OUTPUT_CHUNK + 64 * 1024),
            }
        } else {
            let (done_tx, results) = mpsc::channel::<Done>();
            let mut jobs = Vec::with_capacity(threads);
            let mut handles = Vec::with_capacity(threads);
            for worker in 0..threads {
                let (tx, rx) = mpsc::channel::<Job>();
                let done_tx = done_tx.clone();
                let mut decoder = make_decoder();
                handles.push(thread::spawn(move || {
                    let started = StdInstant::now();
                    for job in rx {
                        let mut out = job.out;
                        out.clear();
                        out.reserve(job.lines.lines.len() * 4096);
                        let mut ends = Vec::with_capacity(job.lines.lines.len());
                        let mut failures = 0;
                        let mut source = Source {
                            file: job.file,
                            line: 0,
                        };
                        for (text, number) in job.lines.iter() {
                            source.line = number;
                            let now = since(started);
                            if !render(
                                &mut decoder,
                                now,
                                parse_line_bytes(text),
                                &source,
                                format,
                                &mut out,
                            ) {
                                failures += 1;
                            }
                            ends.push(out.len());
                        }
                        let done = Done {
                            batch: job.batch,
                            worker,
                            out,
                            ends,
                            failures,
                        };
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                    decoder
                }));
                jobs.push(tx);
            }
            Mode::Parallel {
                shares: (0..threads).map(|_| Share::default()).collect(),
                file: None,
                jobs,
                results,
                handles,
                batch: 0,
                next_to_write: 0,
                route: Vec::with_capacity(BATCH),
                pending: BTreeMap::new(),
                spares: Vec::new(),
            }
        };
        Self {
            format,
            failures: 0,
            out: BufWriter::with_capacity(OUTPUT_CHUNK, io::stdout()),
            progress,
            mode,
        }
    }

    fn line(&mut self, text: &[u8], source: &Source) -> Result<()> {
        match &mut self.mode {
            Mode::Sequential {
                decoder,
                started,
                buf,
            } => {
                let line = parse_line_bytes(text);
                if !render(decoder, since(*started), line, source, self.format, buf) {
                    self.failures += 1;
                }
                // Lines gather here and go out in large writes.
                if buf.len() >= OUTPUT_CHUNK {
                    self.out.write_all(buf)?;
                    buf.clear();
                }
            }
            Mode::Parallel {
                route,
                shares,
                file,
                ..
            } => {
                if *file != source.file && !route.is_empty() {
                    self.dispatch()?;
                    return self.line(text, source);
                }
                if *file != source.file {
                    file.clone_from(&source.file);
                }
                let worker = worker_for(text, source.line, shares.len());
                route.push(worker);
                if let Some(share) = shares.get_mut(worker) {
                    share.push(text, source.line);
                }
                if route.len() >= BATCH {
                    self.dispatch()?;
                }
            }
        }
        Ok(())
    }

    /// Hands the collected batch to the workers; writes what is complete; keeps at most a
    /// few batches in flight so memory stays flat.
    fn dispatch(&mut self) -> Result<()> {
        let Mode::Parallel {
            jobs,
            batch,
            route,
            shares,
            file,
            pending,
            spares,
            ..
        } = &mut self.mode
        else {
            return Ok(());
        };
        if route.is_empty() {
            return Ok(());
        }
        let threads = jobs.len();
        for (worker, share) in shares.iter_mut().enumerate() {
            let lines = std::mem::take(share);
            if let Some(tx) = jobs.get(worker) {
                tx.send(Job {
                    batch: *batch,
                    file: file.clone(),
                    lines,
                    out: spares.pop().unwrap_or_default(),
                })
                .map_err(|_| anyhow::anyhow!("a decoding thread stopped"))?;
            }
        }
        pending.insert(
            *batch,
            Pending {
                route: std::mem::replace(route, Vec::with_capacity(BATCH)),
                done: (0..threads).map(|_| None).collect(),
            },
        );
        *batch += 1;
        let limit = 2 * threads as u64;
        self.collect(|in_flight| in_flight >= limit)
    }

    /// Receives results while `wait(batches in flight)` holds, writing complete batches in
    /// order.
    fn collect(&mut self, wait: impl Fn(u64) -> bool) -> Result<()> {
        loop {
            let Mode::Parallel {
                results,
                batch,
                next_to_write,
                pending,
                spares,
                ..
            } = &mut self.mode
            else {
                return Ok(());
            };
            // Write every batch that is complete, oldest first.
            while let Some(mut entry) = pending.first_entry() {
                if *entry.key() != *next_to_write || entry.get().done.iter().any(Option::is_none) {
                    break;
                }
                let p = entry.get_mut();
                let done: Vec<Done> = p.done.iter_mut().filter_map(Option::take).collect();
                // The lines in input order as (worker, range) runs, handed to the OS as they
                // lie in the workers' buffers (one writev, no copy through this thread).
                let mut cursors = vec![0usize; done.len()];
                let mut runs: Vec<(usize, usize, usize)> = Vec::with_capacity(p.route.len());
                for &w in &p.route {
                    let (Some(d), Some(c)) = (done.get(w), cursors.get_mut(w)) else {
                        continue;
                    };
                    let start = if *c == 0 {
                        0
                    } else {
                        d.ends.get(*c - 1).copied().unwrap_or(0)
                    };
                    let end = d.ends.get(*c).copied().unwrap_or(start);
                    *c += 1;
                    match runs.last_mut() {
                        Some((lw, _, le)) if *lw == w && *le == start => *le = end,
                        _ => runs.push((w, start, end)),
                    }
                }
                let mut slices: Vec<IoSlice<'_>> = runs
                    .iter()
                    .filter_map(|&(w, s, e)| done.get(w)?.out.get(s..e).map(IoSlice::new))
                    .collect();
                self.out.flush()?;
                write_all_vectored(self.out.get_mut(), &mut slices)?;
                self.failures += done.iter().map(|d| d.failures).sum::<usize>();
                spares.extend(done.into_iter().map(|d| d.out));
                entry.remove();
                *next_to_write += 1;
            }
            if !wait(*batch - *next_to_write) {
                return Ok(());
            }
            let d = results
                .recv()
                .map_err(|_| anyhow::anyhow!("a decoding thread stopped"))?;
            if let Some(slot) = pending
                .get_mut(&d.batch)
                .and_then(|p| p.done.get_mut(d.worker))
            {
                *slot = Some(d);
            }
        }
    }

    /// Everything decoded so far out to stdout, now (before the input may block).
    fn flush(&mut self) -> Result<()> {
        self.dispatch()?;
        self.collect(|in_flight| in_flight > 0)?;
        if let Mode::Sequential { buf, .. } = &mut self.mode {
            self.out.write_all(buf)?;
            buf.clear();
        }
        self.out.flush()?;
        Ok(())
    }

    /// Decodes every line of `reader`. `live`: a stream that may wait between lines (a
    /// receiver on stdin), whose reports go out as soon as the input has nothing more ready.
    fn reader<R: io::Read>(
        &mut self,
        mut reader: BufReader<R>,
        file: &str,
        live: bool,
    ) -> Result<()> {
        let mut source = Source {
            file: Some(file.to_string()),
            line: 0,
        };
        let mut text = Vec::with_capacity(512);
        loop {
            // About to read from the OS, which may wait: what is decoded goes out first.
            if live && reader.buffer().is_empty() {
                self.flush()?;
            }
            text.clear();
            let n = reader
                .read_until(b'\n', &mut text)
                .with_context(|| format!("reading {file}"))?;
            if n == 0 {
                return Ok(());
            }
            source.line += 1;
            self.progress.inc(n as u64);
            let t = text.strip_suffix(b"\n").unwrap_or(&text);
            let t = t.strip_suffix(b"\r").unwrap_or(t);
            self.line(t, &source)?;
        }
    }

    /// Drains the workers; returns the decoders (for the format cache) and writes the rest.
    fn finish(mut self) -> Result<(usize, Vec<Decoder>)> {
        self.flush()?;
        self.progress.finish_and_clear();
        let decoders = match self.mode {
            Mode::Sequential { decoder, .. } => vec![*decoder],
            Mode::Parallel { jobs, handles, .. } => {
                drop(jobs);
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .map_err(|_| anyhow::anyhow!("a decoding thread panicked"))
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok((self.failures, decoders))
    }
}

/// True when stdin is a regular file (`< capture.txt`): nothing to wait for between lines.
fn stdin_is_a_file() -> bool {
    use std::os::fd::AsFd;
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| File::from(fd).metadata().ok())
        .is_some_and(|m| m.is_file())
}

/// Writes every slice, in order, with as few system calls as the OS allows.
fn write_all_vectored(w: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        let n = w.write_vectored(slices)?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// The worker for a line: by the sender's link address (M-field and A-field), so one meter's
/// telegrams stay in order in one decoder; other lines by their number. A plain hex line's
/// address is read off its text; other formats are parsed for it.
fn worker_for(text: &[u8], number: usize, threads: usize) -> usize {
    let address = |bytes: &[u8]| {
        bytes.get(2..8).map(|a| {
            a.iter().fold(0u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
            })
        })
    };
    let t = text.trim_ascii_start();
    let t = t
        .strip_prefix(b"0x")
        .or_else(|| t.strip_prefix(b"0X"))
        .unwrap_or(t);
    let mut head = [0u8; 8];
    let key = match t.get(..16) {
        Some(digits) if faster_hex::hex_decode(digits, &mut head).is_ok() => address(&head),
        _ => match parse_line_bytes(text) {
            Line::Telegram { bytes, .. } => address(&bytes),
            _ => None,
        },
    };
    (key.unwrap_or(number as u64) % threads.max(1) as u64) as usize
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
    let keys = keys(&args)?;
    let mut formats = wmbus_host::FormatCache::default();
    if let Some(path) = &args.format_cache
        && path.exists()
    {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let bad = formats.load_text(&text);
        if bad > 0 {
            eprintln!(
                "warning: {bad} invalid line(s) in format cache {}",
                path.display()
            );
        }
    }
    let make_decoder = move || {
        let mut d = Decoder::new(keys.clone(), options);
        *d.formats_mut() = formats.clone();
        d
    };
    let threads = match args.threads {
        0 => thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let total: u64 = args
        .inputs
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let progress = if total > 0 && !args.no_progress && io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bar:30} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut run = Run::new(&make_decoder, format, threads, progress);
    if format == Format::Csv {
        run.out.write_all(render::CSV_HEADER.as_bytes())?;
    }
    for (i, t) in args.telegrams.iter().enumerate() {
        run.line(
            t.as_bytes(),
            &Source {
                file: None,
                line: i + 1,
            },
        )?;
    }
    for path in &args.inputs {
        if path.as_os_str() == "-" {
            run.reader(
                BufReader::with_capacity(256 * 1024, io::stdin()),
                "-",
                !stdin_is_a_file(),
            )?;
        } else {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            run.reader(
                BufReader::with_capacity(256 * 1024, f),
                &path.display().to_string(),
                false,
            )?;
        }
    }
    if args.telegrams.is_empty() && args.inputs.is_empty() {
        run.reader(
            BufReader::with_capacity(256 * 1024, io::stdin()),
            "-",
            !stdin_is_a_file(),
        )?;
    }
    let (failures, decoders) = run.finish()?;
    if let Some(path) = &args.format_cache {
        let mut merged = wmbus_host::FormatCache::default();
        for d in &decoders {
            merged.load_text(&d.formats().to_text());
        }
        std::fs::write(path, merged.to_text())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

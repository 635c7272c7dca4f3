//! `wmbus bench`: bench-testing battery meters over a USB radio dongle (docs/bench.md). A live
//! table per meter while it runs; at the end (duration over, or Ctrl-C) verdicts against the
//! expectations, JSON and CSV of every telegram and of the summary, and SVG plots.

mod plot;
pub(crate) mod stats;

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wmbus_dongle::{Event, Kind, LinkMode, Received};
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::keyfile;
use wmbus_host::report::{Reception, Source};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant as WInstant;

use self::stats::{Bench, Expectations, MeterStats, Seen, verdicts};
use crate::port::{init, now_ms, open, parse_duration, read_some};

/// `wmbus bench` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Serial device of the dongle (for rtlwmbus/rtl433: a file, FIFO or "-").
    #[arg(long)]
    pub device: PathBuf,
    /// Dongle kind: im871a, iu891a, amb8465, amb8465-transparent, cul, rc1180, rtlwmbus, rtl433.
    #[arg(long)]
    pub dongle: String,
    /// Key file.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Expected meters and their expectations (TOML; docs/bench.md).
    #[arg(long)]
    pub meters: Option<PathBuf>,
    /// How long to run: seconds, or with s, m, h (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<String>,
    /// Link mode (default: C1+T1 where the device can, else T1).
    #[arg(long)]
    pub link_mode: Option<String>,
    /// Folder for the reports and plots.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
    /// Seconds between table redraws (log lines when stdout is not a terminal: every 10
    /// redraws).
    #[arg(long, default_value_t = 1.0)]
    pub refresh: f64,
}

fn table(bench: &Bench, elapsed: f64) -> String {
    let mut s = format!(
        "wmbus bench · {elapsed:.0} s · {} meters\n{:<14} {:>5} {:>7} {:>8} {:>7} {:>6} {:>21} {:>5} {:>5} {:>4}  {}\n",
        bench.meters.len(),
        "meter",
        "tgms",
        "last s",
        "interval",
        "jitter",
        "missed",
        "RSSI min/mean/max",
        "auth",
        "nokey",
        "repl",
        "flags · reading"
    );
    for m in bench.meters.values() {
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
        let flags: Vec<String> = m.flags.keys().cloned().collect();
        s.push_str(&format!(
            "{:<14} {:>5} {:>7.1} {:>8} {:>7} {:>6} {:>21} {:>5} {:>5} {:>4}  {}{}\n",
            m.meter.get(..14).unwrap_or(&m.meter),
            m.telegrams,
            elapsed - m.last_seen,
            f(m.interval_mean),
            f(m.interval_jitter),
            m.missed,
            format!("{}/{}/{}", f(m.rssi_min), f(m.rssi_mean), f(m.rssi_max)),
            m.auth_failures,
            m.no_key,
            m.replays,
            if flags.is_empty() {
                String::new()
            } else {
                format!("[{}] ", flags.join(","))
            },
            m.reading.as_deref().unwrap_or("")
        ));
    }
    s
}

/// Runs the bench.
pub(crate) fn run(args: Args) -> Result<ExitCode> {
    let kind: Kind = args
        .dongle
        .parse()
        .map_err(|_| anyhow::anyhow!("unknown dongle kind {}", args.dongle))?;
    let mode: LinkMode = match &args.link_mode {
        Some(m) => m
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown link mode {m}"))?,
        None if kind.host().init(LinkMode::C1T1).is_ok() => LinkMode::C1T1,
        None => LinkMode::T1,
    };
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    let expectations: Expectations = match &args.meters {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => Expectations::default(),
    };
    let mut keys = MemoryKeyStore::new();
    if let Some(path) = &args.keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        keyfile::load_into(
            &mut keys,
            keyfile::parse_file(&text, &path.display().to_string())?,
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;

    let mut port = open(&args.device, kind)?;
    let mut host = kind.host();
    let started = Instant::now();
    let mut early = Vec::new();
    init(port.as_mut(), host.as_mut(), mode, started, &mut early)?;
    let mut decoder = Decoder::new(keys, DecodeOptions::default());
    let mut bench = Bench::default();
    let mut seen: Vec<Seen> = Vec::new();
    let mut jsonl = BufWriter::new(File::create(args.out.join("telegrams.jsonl"))?);
    let mut csv = BufWriter::new(File::create(args.out.join("telegrams.csv"))?);
    writeln!(
        csv,
        "t,meter,status,mode,rssi_dbm,access_number,counter,flags,reading"
    )?;
    let terminal = io::stdout().is_terminal();
    let refresh = Duration::from_secs_f64(args.refresh.max(0.1));
    let mut next_draw = Instant::now() + refresh;
    let mut draws = 0u64;
    let mut line = Vec::new();
    let mut sequence = 0usize;
    let mut handle = |r: Received,
                      bench: &mut Bench,
                      seen: &mut Vec<Seen>,
                      jsonl: &mut BufWriter<File>,
                      csv: &mut BufWriter<File>|
     -> Result<()> {
        let t = started.elapsed().as_secs_f64();
        let mut report = decoder.decode(WInstant::from_millis(now_ms(started)), &r.telegram);
        sequence += 1;
        report.source = Some(Source {
            file: Some(args.device.display().to_string()),
            line: sequence,
        });
        report.reception = Reception {
            rssi: r.rssi_dbm.map(|x| (f64::from(x) * 10.0).round() / 10.0),
            rssi_unit: r.rssi_dbm.map(|_| "dBm"),
            link_mode: r.link_mode.map(|m| m.name().to_string()),
            time: None,
        };
        let s = Seen::from_report(t, &report);
        bench.add(&s);
        line.clear();
        wmbus_host::render::write_line(&mut line, &report, wmbus_host::render::Format::Json);
        jsonl.write_all(&line)?;
        writeln!(
            csv,
            "{:.3},{},{},{},{},{},{},{},{}",
            s.t,
            s.meter,
            s.status,
            s.mode,
            s.rssi.map_or(String::new(), |x| x.to_string()),
            s.access_number.map_or(String::new(), |x| x.to_string()),
            s.counter.map_or(String::new(), |x| x.to_string()),
            s.flags.join(" "),
            s.reading.as_deref().unwrap_or("").replace(',', ";")
        )?;
        seen.push(s);
        Ok(())
    };
    for r in early.drain(..) {
        handle(r, &mut bench, &mut seen, &mut jsonl, &mut csv)?;
    }
    let mut device_error = None;
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
        match read_some(port.as_mut(), host.as_mut()) {
            Ok(0) if kind.baud_rate().is_none() => std::thread::sleep(Duration::from_millis(20)),
            Ok(_) => {}
            Err(e) => {
                device_error = Some(e.to_string());
                break;
            }
        }
        while let Some(e) = host.poll(now_ms(started)) {
            if let Event::Telegram(mut r) = e {
                if r.link_mode.is_none() && mode != LinkMode::C1T1 {
                    r.link_mode = Some(mode);
                }
                handle(r, &mut bench, &mut seen, &mut jsonl, &mut csv)?;
            }
        }
        if Instant::now() >= next_draw {
            next_draw += refresh;
            draws += 1;
            let t = table(&bench, started.elapsed().as_secs_f64());
            if terminal {
                print!("\x1b[H\x1b[2J{t}");
                io::stdout().flush()?;
            } else if draws.is_multiple_of(10) {
                println!("{t}");
            }
        }
    }
    jsonl.flush()?;
    csv.flush()?;
    let elapsed = started.elapsed().as_secs_f64();
    let verdicts = verdicts(&bench, &expectations, elapsed);
    let meters: Vec<&MeterStats> = bench.meters.values().collect();
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "duration_s": elapsed,
            "device": args.device.display().to_string(),
            "dongle": kind.name(),
            "link_mode": mode.name(),
            "device_error": device_error,
            "meters": meters,
            "verdicts": verdicts,
        }))?,
    )?;
    let mut summary = BufWriter::new(File::create(args.out.join("summary.csv"))?);
    writeln!(
        summary,
        "meter,telegrams,ok,interval_mean_s,interval_jitter_s,missed,rssi_min,rssi_mean,rssi_max,auth_failures,no_key,replays,verdict,reasons"
    )?;
    for m in &meters {
        let v = verdicts.iter().find(|v| v.meter == m.meter);
        let f = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.3}"));
        writeln!(
            summary,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            m.meter,
            m.telegrams,
            m.ok,
            f(m.interval_mean),
            f(m.interval_jitter),
            m.missed,
            f(m.rssi_min),
            f(m.rssi_mean),
            f(m.rssi_max),
            m.auth_failures,
            m.no_key,
            m.replays,
            v.map_or("unexpected", |v| if v.pass { "pass" } else { "fail" }),
            v.map_or(String::new(), |v| v.reasons.join("; ").replace(',', ";"))
        )?;
    }
    summary.flush()?;
    for m in bench.meters.keys() {
        let points: Vec<&Seen> = seen.iter().filter(|s| &s.meter == m).collect();
        let svg = plot::meter(m, &points);
        std::fs::write(
            args.out.join(format!("plot-{}.svg", m.replace('.', "_"))),
            svg,
        )?;
    }
    println!("{}", table(&bench, elapsed));
    let mut failed = false;
    for v in &verdicts {
        if v.pass {
            println!("PASS {}", v.meter);
        } else {
            failed = true;
            println!("FAIL {}: {}", v.meter, v.reasons.join("; "));
        }
    }
    if let Some(e) = &device_error {
        println!("device error: {e}");
    }
    println!("reports in {}", args.out.display());
    Ok(if failed || device_error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

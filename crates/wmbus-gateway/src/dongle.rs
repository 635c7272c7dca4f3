//! One dongle: open the port, run the init dialogue, forward telegrams; re-init when the
//! liveness watchdog fires, reopen with backoff when the device fails or disappears.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep};
use tokio_util::codec::Framed;
use tracing::{debug, error, info, warn};
use wmbus_dongle::codec::HostCodec;
use wmbus_dongle::dialogue::{Action, Dialogue};
use wmbus_dongle::{Event, Kind, LinkMode, Received};

/// How one dongle is reached.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DongleConfig {
    /// Name in logs and reports (defaults to the device path).
    #[serde(default)]
    pub name: Option<String>,
    /// Serial device (or, for rtl_wmbus and rtl_433, a file or FIFO; "-" for stdin). With
    /// `command`, only a name.
    #[serde(default)]
    pub device: String,
    /// For rtl_wmbus and rtl_433: a shell command whose standard output is read (restarted
    /// with backoff when it ends), e.g. `rtl_sdr -f 868.95M -s 1600000 - | rtl_wmbus`.
    #[serde(default)]
    pub command: Option<String>,
    /// Kind (`wmbus_dongle::Kind` names).
    pub kind: String,
    /// Link mode to listen in (default: C1+T1 where the device can, else T1).
    #[serde(default)]
    pub link_mode: Option<String>,
    /// Serial speed (default: the kind's).
    #[serde(default)]
    pub baud_rate: Option<u32>,
    /// Seconds without a telegram before the device is initialised again (and reopened if
    /// that does not help); 0 turns the watchdog off.
    #[serde(default = "default_watchdog")]
    pub watchdog: u64,
}

fn default_watchdog() -> u64 {
    900
}

impl DongleConfig {
    /// Checks the kind and the link mode.
    ///
    /// # Errors
    /// An unknown kind or mode, or a mode the device cannot listen in.
    pub fn validate(&self) -> anyhow::Result<(Kind, LinkMode)> {
        let kind: Kind = self
            .kind
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown dongle kind {}", self.kind))?;
        if self.command.is_some() && kind.baud_rate().is_some() {
            anyhow::bail!(
                "{}: `command` is for rtlwmbus and rtl433",
                self.display_name()
            );
        }
        if self.command.is_none() && self.device.is_empty() {
            anyhow::bail!("a dongle needs `device` (or `command` for rtlwmbus and rtl433)");
        }
        let mode: LinkMode = match &self.link_mode {
            Some(m) => m
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown link mode {m}"))?,
            None if kind.host().init(LinkMode::C1T1).is_ok() => LinkMode::C1T1,
            None => LinkMode::T1,
        };
        kind.host()
            .init(mode)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.display_name()))?;
        Ok((kind, mode))
    }

    /// The name used in reports.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| (!self.device.is_empty()).then(|| self.device.clone()))
            .or_else(|| self.command.clone())
            .unwrap_or_default()
    }
}

/// What a dongle task sends to the core.
#[derive(Debug)]
pub enum FromDongle {
    /// A telegram.
    Telegram(String, Received),
    /// Bytes dropped while resynchronising.
    Discarded(usize),
}

enum End {
    Shutdown,
    /// Reopen: why, and whether the device had been listening (then try again soon).
    Reopen(String, bool),
}

/// Runs one dongle until shutdown.
pub async fn run(
    config: DongleConfig,
    tx: mpsc::Sender<FromDongle>,
    mut transmit: mpsc::Receiver<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (kind, mode) = config.validate()?;
    let name = config.display_name();
    let mut backoff = Duration::from_millis(250);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let mut link = Link {
            name: &name,
            kind,
            mode,
            config: &config,
            tx: &tx,
            transmit: &mut transmit,
            shutdown: &mut shutdown,
        };
        let end = match open(&config, kind).await {
            Ok(Port::Serial(p)) => session(&mut link, p).await,
            Ok(Port::File(f)) => session(&mut link, f).await,
            Ok(Port::Stdin(s)) => session(&mut link, Stdio(s)).await,
            Ok(Port::Child(mut child, out)) => {
                let end = session(&mut link, Stdio(out)).await;
                let _ = child.kill().await;
                end
            }
            Err(e) => End::Reopen(format!("cannot open {}: {e}", config.device), false),
        };
        match end {
            End::Shutdown => return Ok(()),
            End::Reopen(why, established) => {
                if established {
                    backoff = Duration::from_millis(250);
                }
                warn!(dongle = %name, "{why}; reopening in {backoff:?}");
                tokio::select! {
                    () = sleep(backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

enum Port {
    Serial(tokio_serial::SerialStream),
    File(tokio::fs::File),
    Stdin(tokio::io::Stdin),
    Child(tokio::process::Child, tokio::process::ChildStdout),
}

/// A read-only stream (stdin, a child's stdout): commands to an SDR text stream go nowhere.
struct Stdio<R>(R);

impl<R: AsyncRead + Unpin> AsyncRead for Stdio<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for Stdio<R> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

async fn open(config: &DongleConfig, kind: Kind) -> std::io::Result<Port> {
    if let Some(cmd) = &config.command {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no standard output"))?;
        return Ok(Port::Child(child, out));
    }
    match config.baud_rate.or(kind.baud_rate()) {
        Some(baud) => {
            use tokio_serial::SerialPortBuilderExt;
            let port = tokio_serial::new(&config.device, baud)
                .timeout(Duration::from_millis(100))
                .open_native_async()?;
            Ok(Port::Serial(port))
        }
        None if config.device == "-" => Ok(Port::Stdin(tokio::io::stdin())),
        None => Ok(Port::File(
            tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&config.device)
                .await
                .or(tokio::fs::File::open(&config.device).await)?,
        )),
    }
}

/// What a session works with.
struct Link<'a> {
    name: &'a str,
    kind: Kind,
    mode: LinkMode,
    config: &'a DongleConfig,
    tx: &'a mpsc::Sender<FromDongle>,
    transmit: &'a mut mpsc::Receiver<Vec<u8>>,
    shutdown: &'a mut watch::Receiver<bool>,
}

async fn session<P: AsyncRead + AsyncWrite + Unpin>(link: &mut Link<'_>, port: P) -> End {
    let Link {
        name,
        kind,
        mode,
        config,
        tx,
        ref mut transmit,
        ref mut shutdown,
    } = *link;
    let mut framed = Framed::new(port, HostCodec::new(kind));
    if let Err(why) = init(name, mode, &mut framed, tx).await {
        return End::Reopen(why, false);
    }
    info!(dongle = %name, %kind, %mode, "listening");
    let watchdog = (config.watchdog > 0).then(|| Duration::from_secs(config.watchdog));
    let mut last = Instant::now();
    let mut reinitialised = false;
    loop {
        let deadline = watchdog.map(|w| last + w);
        tokio::select! {
            item = framed.next() => match item {
                Some(Ok(Event::Telegram(mut r))) => {
                    last = Instant::now();
                    reinitialised = false;
                    // A device that does not say hears the one mode it was set to.
                    if r.link_mode.is_none() && mode != LinkMode::C1T1 {
                        r.link_mode = Some(mode);
                    }
                    if tx.send(FromDongle::Telegram(name.to_string(), r)).await.is_err() {
                        return End::Shutdown;
                    }
                }
                Some(Ok(Event::Discarded { bytes, reason })) => {
                    debug!(dongle = %name, bytes = bytes.len(), reason, "discarded");
                    let _ = tx.send(FromDongle::Discarded(bytes.len())).await;
                }
                Some(Ok(Event::Reply(r))) => debug!(dongle = %name, code = r.code, "reply"),
                Some(Err(e)) => return End::Reopen(format!("read error: {e}"), true),
                None => return End::Reopen("device closed".into(), true),
            },
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                if reinitialised {
                    return End::Reopen("silent after re-initialising".into(), false);
                }
                warn!(dongle = %name, "no telegram for {:?}: initialising again", watchdog.unwrap_or_default());
                if let Err(why) = init(name, mode, &mut framed, tx).await {
                    return End::Reopen(why, false);
                }
                reinitialised = true;
                last = Instant::now();
            }
            Some(bytes) = transmit.recv() => {
                let steps = match framed.codec().host().transmit(&bytes, mode, mode) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(dongle = %name, "cannot transmit: {e}");
                        continue;
                    }
                };
                debug!(dongle = %name, bytes = bytes.len(), "transmitting");
                if let Err(why) = dialogue(name, steps, &mut framed, tx).await {
                    return End::Reopen(why, true);
                }
            }
            _ = shutdown.changed() => return End::Shutdown,
        }
    }
}

/// Runs the init dialogue ([`Dialogue`]); telegrams arriving meanwhile are forwarded.
async fn init<P: AsyncRead + AsyncWrite + Unpin>(
    name: &str,
    mode: LinkMode,
    framed: &mut Framed<P, HostCodec>,
    tx: &mpsc::Sender<FromDongle>,
) -> Result<(), String> {
    let steps = framed
        .codec()
        .host()
        .init(mode)
        .map_err(|e| e.to_string())?;
    dialogue(name, steps, framed, tx).await
}

/// Runs a dialogue's steps; telegrams arriving meanwhile are forwarded.
async fn dialogue<P: AsyncRead + AsyncWrite + Unpin>(
    name: &str,
    steps: Vec<wmbus_dongle::Step>,
    framed: &mut Framed<P, HostCodec>,
    tx: &mpsc::Sender<FromDongle>,
) -> Result<(), String> {
    let mut dialogue = Dialogue::new(steps);
    let started = Instant::now();
    let now = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    loop {
        match dialogue.poll(now()) {
            Action::Done => return Ok(()),
            Action::Failed(step) => {
                error!(dongle = %name, step, "step failed");
                return Err(format!("step '{step}' got no answer"));
            }
            Action::Write(bytes) => {
                if let Some(step) = dialogue.step()
                    && dialogue.attempt() > 1
                {
                    warn!(dongle = %name, step = step.name, attempt = dialogue.attempt(), "no answer: again");
                }
                framed
                    .send(bytes)
                    .await
                    .map_err(|e| format!("write error: {e}"))?;
            }
            Action::Wait(until) => {
                let deadline = started + Duration::from_millis(until);
                tokio::select! {
                    item = framed.next() => match item {
                        Some(Ok(Event::Reply(r))) => {
                            if dialogue.reply(r.code) {
                                debug!(dongle = %name, code = r.code, "step ok");
                            }
                        }
                        Some(Ok(Event::Telegram(r))) => {
                            let _ = tx.send(FromDongle::Telegram(name.to_string(), r)).await;
                        }
                        Some(Ok(Event::Discarded { bytes, .. })) => {
                            let _ = tx.send(FromDongle::Discarded(bytes.len())).await;
                        }
                        Some(Err(e)) => return Err(format!("read error: {e}")),
                        None => return Err("device closed".to_string()),
                    },
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
    }
}

//! One partner→meter request and the meter's answer, sans-IO: when to transmit, how long to
//! wait, when to try again, which frame is the answer.
//!
//! The rules (OMS Vol2 Annex M M.1.5, Annex N N.3, N.7, N.8, N.10, N.12; addendum §7):
//! - A battery meter listens only for a short window after each of its own transmissions
//!   (EN 13757-4 access windows: the bidirectional bits of its configuration field or ELL
//!   CC, ACC-NR and ACC-DMD). With [`Window::AfterMeterFrame`] the engine transmits only while
//!   such a window is open, so each try waits for the meter's next frame.
//! - The answer is the frame from the same meter (long transport header, or link address)
//!   whose C-field is an answer (ACK, NACK, RSP-UD) and whose transport access number equals
//!   the request's. A frame from the meter that is not the answer opens a new window.
//! - A retry sends the same bytes again: same access numbers, same counters. The meter
//!   recognises the repetition and answers it without executing twice (provisional: the
//!   retransmission rule of EN 13757-7 §7.5.5.3 is not public; `docs/bidirectional.md`).
//!
//! The engine never reads a clock or a port: the caller passes [`Instant`]s, writes what
//! [`Action::Transmit`] gives and hands every received frame to [`Exchange::handle`].

use alloc::vec::Vec;

use wmbus_frame::codepoints::{ControlField, MeterAddress};
use wmbus_frame::frame::Frame;

use crate::time::{Duration, Instant};

/// When the meter can hear the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Always (a mains-powered meter, S2 with a permanent receiver).
    Always,
    /// For this long after each of the meter's own frames (battery meters).
    AfterMeterFrame(Duration),
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Transmissions at most, the first included.
    pub tries: u32,
    /// How long to wait for the answer after a transmission.
    pub answer_timeout: Duration,
    /// How long to wait for an access window before giving up.
    pub window_timeout: Duration,
    /// When the meter listens.
    pub window: Window,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            tries: 3,
            answer_timeout: Duration::from_millis(2_000),
            window_timeout: Duration::from_secs(120),
            window: Window::AfterMeterFrame(Duration::from_millis(2_000)),
        }
    }
}

/// What the request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the exchange ends when the request is sent (CNF-IR, ACK).
    Nothing,
    /// An answer echoing the request's access numbers: the TPL one where the answer has a
    /// transport header (N.8, N.12), else the ELL one (later fragments, N.3.4).
    Answer {
        /// The request's TPL ACC (`None`: the request had no transport layer).
        access_number: Option<u8>,
        /// The request's ELL ACC.
        ell_access_number: Option<u8>,
    },
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do: no request, or the last one ended.
    Idle,
    /// Write these bytes (L-field first, no CRCs) to the radio now.
    Transmit(Vec<u8>),
    /// Wait for frames; poll again at this time at the latest.
    Wait(Instant),
    /// The request was sent and nothing was expected.
    Sent,
    /// The exchange failed.
    Failed(Failure),
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The meter opened no window in time (not heard at all since the request, or not after
    /// the last try).
    NoWindow {
        /// Transmissions made.
        tries: u32,
    },
    /// Every try went unanswered.
    NoAnswer {
        /// Transmissions made.
        tries: u32,
    },
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoWindow { tries: 0 } => {
                f.write_str("the meter was not heard (no access window)")
            }
            Self::NoWindow { tries } => write!(
                f,
                "no answer to {tries} tries, and the meter opened no further window"
            ),
            Self::NoAnswer { tries } => write!(f, "no answer to {tries} tries"),
        }
    }
}

/// What a received frame meant to the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Not from the meter, or from the meter but it does not listen after it (no
    /// bidirectional bit, not an access or installation frame).
    Ignored,
    /// From the meter, not the answer, and it listens now: a window is open.
    Window,
    /// The answer (the frame's bytes); the exchange is idle again.
    Answer(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    /// Waiting for a window to send `request`.
    Pending {
        since: Instant,
    },
    /// Sent, waiting for the answer until `deadline`.
    Sent {
        deadline: Instant,
    },
    Done(Action),
}

/// One request at a time to one meter.
#[derive(Debug, Clone)]
pub struct Exchange {
    meter: MeterAddress,
    policy: Policy,
    request: Vec<u8>,
    expect: Expect,
    tries: u32,
    state: State,
    /// When the meter was last heard, while that opens a window.
    heard: Option<Instant>,
}

/// Whether the meter listens after this frame (EN 13757-4 access windows): its ELL CC has the
/// bidirectional bit B, or its configuration field does (modes 0–6), or it is an
/// installation request, ACC-NR or ACC-DMD.
pub fn opens_window(frame: &Frame<'_>) -> bool {
    let control = frame.repr.link.control();
    matches!(
        control,
        ControlField::SND_IR | ControlField::ACC_NR | ControlField::ACC_DMD
    ) || frame
        .repr
        .ell
        .is_some_and(|e| e.communication_control.bidirectional())
        || frame
            .repr
            .transport
            .tpl
            .and_then(|t| t.header)
            .is_some_and(|h| h.config.mode().0 < 7 && h.config.bidirectional())
}

/// The same meter: manufacturer and identification number (version and type may differ
/// between a radio adapter's link address and the meter's long header).
pub fn same_meter(a: &MeterAddress, b: &MeterAddress) -> bool {
    a.manufacturer == b.manufacturer && a.address.ident == b.address.ident
}

impl Exchange {
    /// An idle exchange with `meter`.
    pub fn new(meter: MeterAddress, policy: Policy) -> Self {
        Self {
            meter,
            policy,
            request: Vec::new(),
            expect: Expect::Nothing,
            tries: 0,
            state: State::Idle,
            heard: None,
        }
    }

    /// The meter.
    pub const fn meter(&self) -> &MeterAddress {
        &self.meter
    }

    /// Transmissions of the current request so far.
    pub const fn tries(&self) -> u32 {
        self.tries
    }

    /// Starts a request (replacing any pending one). A window the meter opened before
    /// `now` still counts, so a request made right after hearing the meter goes out at once.
    pub fn request(&mut self, now: Instant, bytes: Vec<u8>, expect: Expect) {
        self.request = bytes;
        self.expect = expect;
        self.tries = 0;
        self.state = State::Pending { since: now };
    }

    fn window_open(&self, now: Instant) -> bool {
        match self.policy.window {
            Window::Always => true,
            Window::AfterMeterFrame(length) => self
                .heard
                .is_some_and(|h| now.millis() <= h.millis().saturating_add(length.millis())),
        }
    }

    /// The next thing to do.
    pub fn poll(&mut self, now: Instant) -> Action {
        match self.state.clone() {
            State::Idle => Action::Idle,
            State::Done(action) => {
                self.state = State::Idle;
                action
            }
            State::Pending { since } => {
                if self.window_open(now) {
                    self.tries += 1;
                    // One transmission per window: the next needs a new frame from the meter.
                    self.heard = None;
                    self.state = match self.expect {
                        Expect::Nothing => State::Done(Action::Sent),
                        Expect::Answer { .. } => State::Sent {
                            deadline: now + self.policy.answer_timeout,
                        },
                    };
                    return Action::Transmit(self.request.clone());
                }
                let give_up = since + self.policy.window_timeout;
                if now >= give_up {
                    self.state = State::Idle;
                    return Action::Failed(Failure::NoWindow { tries: self.tries });
                }
                Action::Wait(give_up)
            }
            State::Sent { deadline } => {
                if now < deadline {
                    return Action::Wait(deadline);
                }
                if self.tries >= self.policy.tries {
                    self.state = State::Idle;
                    return Action::Failed(Failure::NoAnswer { tries: self.tries });
                }
                // A window opened while waiting (the meter sent again) is still usable.
                self.state = State::Pending { since: now };
                self.poll(now)
            }
        }
    }

    /// A frame received from the radio.
    pub fn handle(&mut self, now: Instant, frame: &Frame<'_>) -> Handled {
        let Some(from) = frame.meter() else {
            return Handled::Ignored;
        };
        if !same_meter(&from, &self.meter) {
            return Handled::Ignored;
        }
        if let (
            State::Sent { .. },
            Expect::Answer {
                access_number,
                ell_access_number,
            },
        ) = (&self.state, self.expect)
        {
            let control = frame.repr.link.control();
            let answer_kind = matches!(
                control,
                ControlField::ACK | ControlField::NACK | ControlField::RSP_UD
            );
            let tpl = frame
                .repr
                .transport
                .tpl
                .and_then(|t| t.header)
                .map(|h| h.access_number);
            let ell = frame.repr.ell.map(|e| e.access_number);
            let echoed = match (access_number, tpl) {
                (Some(want), Some(got)) => want == got,
                _ => ell_access_number.is_some() && ell_access_number == ell,
            };
            if answer_kind && echoed {
                self.state = State::Idle;
                return Handled::Answer(frame.bytes.to_vec());
            }
        }
        if !opens_window(frame) {
            return Handled::Ignored;
        }
        self.heard = Some(now);
        Handled::Window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use wmbus_frame::frame::normalize;

    fn parse(hex_text: &str, out: &mut [u8; 300]) -> usize {
        let bytes: Vec<u8> = (0..hex_text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex_text[i..i + 2], 16).unwrap())
            .collect();
        normalize(&bytes, None, out).unwrap().len
    }

    // Annex N N.12.1 (the breaker's SND-NR) and N.12.3 (its RSP-UD, TPL ACC 51h), without CRCs.
    const N121: &str = "33443A637856341255208CA4E5900F002C25B30A0000ED17236827CEA2FF7A7500100710B38C5500993341B123674F5938D29933";
    const N123: &str = "43083A637856341255208C8423900F002C25F10A00001C566D47AB618754C451002007102DA57D884181E5376C0F7C9F86100822C33CF7CDFDB8411C20D477D8C5A67F37";

    fn breaker() -> MeterAddress {
        let mut b = [0u8; 300];
        let n = parse(N121, &mut b);
        Frame::parse(&b[..n], wmbus_frame::dll::FrameFormat::A)
            .unwrap()
            .meter()
            .unwrap()
    }

    fn handle(x: &mut Exchange, now: u64, text: &str) -> Handled {
        let mut b = [0u8; 300];
        let n = parse(text, &mut b);
        let f = Frame::parse(&b[..n], wmbus_frame::dll::FrameFormat::A).unwrap();
        x.handle(Instant(now), &f)
    }

    #[test]
    fn waits_for_the_window_then_matches_the_answer() {
        let mut x = Exchange::new(breaker(), Policy::default());
        x.request(
            Instant(0),
            vec![1, 2, 3],
            Expect::Answer {
                access_number: Some(0x51),
                ell_access_number: Some(0x23),
            },
        );
        assert_eq!(x.poll(Instant(10)), Action::Wait(Instant(120_000)));
        assert_eq!(handle(&mut x, 100, N121), Handled::Window);
        assert_eq!(x.poll(Instant(150)), Action::Transmit(vec![1, 2, 3]));
        assert_eq!(x.poll(Instant(200)), Action::Wait(Instant(2_150)));
        // The meter's spontaneous frame is not the answer; N.12.3 is.
        assert_eq!(handle(&mut x, 300, N121), Handled::Window);
        assert!(matches!(handle(&mut x, 400, N123), Handled::Answer(_)));
        assert_eq!(x.poll(Instant(500)), Action::Idle);
    }

    #[test]
    fn a_wrong_access_number_is_not_the_answer() {
        let mut x = Exchange::new(breaker(), Policy::default());
        x.request(
            Instant(0),
            vec![9],
            Expect::Answer {
                access_number: Some(0x52),
                ell_access_number: Some(0x23),
            },
        );
        handle(&mut x, 1, N121);
        assert_eq!(x.poll(Instant(2)), Action::Transmit(vec![9]));
        assert_eq!(handle(&mut x, 3, N123), Handled::Window);
    }

    #[test]
    fn retries_in_the_next_window_then_gives_up() {
        let policy = Policy {
            tries: 2,
            ..Policy::default()
        };
        let mut x = Exchange::new(breaker(), policy);
        x.request(
            Instant(0),
            vec![7],
            Expect::Answer {
                access_number: Some(0x51),
                ell_access_number: Some(0x23),
            },
        );
        handle(&mut x, 0, N121);
        assert_eq!(x.poll(Instant(0)), Action::Transmit(vec![7]));
        // The answer is lost; the window after the timeout is gone, so wait for the meter.
        assert_eq!(x.poll(Instant(2_000)), Action::Wait(Instant(122_000)));
        handle(&mut x, 5_000, N121);
        assert_eq!(x.poll(Instant(5_001)), Action::Transmit(vec![7]));
        assert_eq!(x.tries(), 2);
        assert_eq!(
            x.poll(Instant(7_001)),
            Action::Failed(Failure::NoAnswer { tries: 2 })
        );
    }

    #[test]
    fn a_window_that_closed_is_not_used() {
        let mut x = Exchange::new(breaker(), Policy::default());
        handle(&mut x, 0, N121);
        x.request(Instant(5_000), vec![1], Expect::Nothing);
        assert_eq!(x.poll(Instant(5_000)), Action::Wait(Instant(125_000)));
        assert_eq!(
            x.poll(Instant(125_000)),
            Action::Failed(Failure::NoWindow { tries: 0 })
        );
    }

    /// OMS Annex N N.2.1: a unidirectional SND-NR (no ELL, CF bit B clear) opens no window.
    #[test]
    fn a_unidirectional_frame_opens_no_window() {
        const N21: &str = "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A";
        let mut b = [0u8; 300];
        let n = parse(N21, &mut b);
        let f = Frame::parse(&b[..n], wmbus_frame::dll::FrameFormat::A).unwrap();
        assert!(!opens_window(&f));
        let mut x = Exchange::new(f.meter().unwrap(), Policy::default());
        x.request(Instant(0), vec![1], Expect::Nothing);
        assert_eq!(x.handle(Instant(1), &f), Handled::Ignored);
        assert_eq!(x.poll(Instant(2)), Action::Wait(Instant(120_000)));
    }

    #[test]
    fn nothing_expected_ends_when_sent() {
        let policy = Policy {
            window: Window::Always,
            ..Policy::default()
        };
        let mut x = Exchange::new(breaker(), policy);
        x.request(Instant(0), vec![1], Expect::Nothing);
        assert_eq!(x.poll(Instant(0)), Action::Transmit(vec![1]));
        assert_eq!(x.poll(Instant(0)), Action::Sent);
        assert_eq!(x.poll(Instant(0)), Action::Idle);
    }
}

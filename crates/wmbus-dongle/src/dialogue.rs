//! A list of [`Step`]s (an init dialogue, a transmission) as a sans-IO state machine: it says
//! what to write and until when to wait; the caller feeds it the replies and the time. Each
//! step is tried `tries` times, `timeout_ms` apart.

use alloc::vec::Vec;

use crate::Step;

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (then call [`Dialogue::poll`] again).
    Write(Vec<u8>),
    /// Read and pass replies to [`Dialogue::reply`] until this time, then poll again.
    Wait(u64),
    /// Every step is done.
    Done,
    /// This step got no answer after every try.
    Failed(&'static str),
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Dialogue {
    steps: Vec<Step>,
    current: usize,
    attempt: u32,
    deadline: Option<u64>,
    tries: u32,
    timeout_ms: u64,
}

impl Dialogue {
    /// The gateway's and the bench's defaults: 3 tries, 2 s each.
    pub fn new(steps: Vec<Step>) -> Self {
        Self::with_limits(steps, 3, 2000)
    }

    /// With explicit tries and timeout.
    pub fn with_limits(steps: Vec<Step>, tries: u32, timeout_ms: u64) -> Self {
        Self {
            steps,
            current: 0,
            attempt: 0,
            deadline: None,
            tries: tries.max(1),
            timeout_ms,
        }
    }

    /// The step under way (for logs).
    pub fn step(&self) -> Option<&Step> {
        self.steps.get(self.current)
    }

    /// Tries so far of the current step.
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    fn advance(&mut self) {
        self.current += 1;
        self.attempt = 0;
        self.deadline = None;
    }

    /// What to do at `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Action {
        let Some(step) = self.steps.get(self.current) else {
            return Action::Done;
        };
        match self.deadline {
            Some(d) if now_ms < d => Action::Wait(d),
            Some(_) if self.attempt >= self.tries => Action::Failed(step.name),
            _ => {
                let write = step.write.clone();
                self.attempt += 1;
                if step.expect.is_some() {
                    self.deadline = Some(now_ms.saturating_add(self.timeout_ms));
                } else {
                    self.advance();
                }
                Action::Write(write)
            }
        }
    }

    /// A reply came; returns true when it completed the current step.
    pub fn reply(&mut self, code: u16) -> bool {
        let matches = self.deadline.is_some()
            && self.steps.get(self.current).and_then(|s| s.expect) == Some(code);
        if matches {
            self.advance();
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &'static str, expect: Option<u16>) -> Step {
        Step {
            name,
            write: alloc::vec![1],
            expect,
        }
    }

    #[test]
    fn steps_replies_retries() {
        let mut d = Dialogue::with_limits(
            alloc::vec![step("a", Some(7)), step("b", None), step("c", Some(9))],
            2,
            100,
        );
        assert_eq!(d.poll(0), Action::Write(alloc::vec![1]));
        assert_eq!(d.poll(50), Action::Wait(100));
        assert!(!d.reply(8), "another reply");
        assert!(d.reply(7));
        assert_eq!(
            d.poll(60),
            Action::Write(alloc::vec![1]),
            "b, no answer expected"
        );
        assert_eq!(d.poll(60), Action::Write(alloc::vec![1]), "c");
        assert_eq!(
            d.poll(160),
            Action::Write(alloc::vec![1]),
            "c again after the timeout"
        );
        assert_eq!(d.attempt(), 2);
        assert_eq!(d.poll(260), Action::Failed("c"));
        assert!(
            d.reply(9),
            "a late answer still counts while failed is not acted on"
        );
        assert_eq!(d.poll(270), Action::Done);
    }
}

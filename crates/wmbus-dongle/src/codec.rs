//! A [`Host`] as a tokio-util codec: `Decoder` yields [`Event`]s (never an error for bad
//! bytes: they come out as [`Event::Discarded`]), `Encoder` writes raw command bytes.

use alloc::boxed::Box;
use alloc::vec::Vec;
use std::io;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{Event, Host, Kind};

/// The codec of one device.
#[derive(Debug)]
pub struct HostCodec {
    host: Box<dyn Host>,
    started: Instant,
}

impl HostCodec {
    /// A codec for `kind`.
    pub fn new(kind: Kind) -> Self {
        Self {
            host: kind.host(),
            started: Instant::now(),
        }
    }

    /// The engine (for its init and transmit steps).
    pub fn host(&self) -> &dyn Host {
        self.host.as_ref()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Decoder for HostCodec {
    type Item = Event;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, io::Error> {
        if !src.is_empty() {
            let bytes = src.split();
            self.host.push(&bytes);
        }
        Ok(self.host.poll(self.now_ms()))
    }
}

impl Encoder<Vec<u8>> for HostCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), io::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

//! A bounds-checked cursor over a borrowed slice (rustls' `Reader` habit): every read either
//! returns the bytes or a [`Error`] naming the layer and the absolute offset.

use crate::error::{Error, Layer, Result};

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    base: usize,
    layer: Layer,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, whose first byte sits at absolute offset `base`.
    pub(crate) const fn new(bytes: &'a [u8], base: usize, layer: Layer) -> Self {
        Self {
            bytes,
            position: 0,
            base,
            layer,
        }
    }

    pub(crate) const fn set_layer(&mut self, layer: Layer) {
        self.layer = layer;
    }

    /// Absolute offset of the next byte.
    pub(crate) const fn offset(&self) -> usize {
        self.base + self.position
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.position.checked_add(n);
        match end.and_then(|end| self.bytes.get(self.position..end)) {
            Some(s) => {
                self.position += n;
                Ok(s)
            }
            None => Err(Error::truncated(
                self.layer,
                self.offset(),
                n,
                self.remaining(),
            )),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u16_le(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32_be(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.bytes.get(self.position..).unwrap_or(&[]);
        self.position = self.bytes.len();
        s
    }
}

/// A bounds-checked writer into a caller's buffer (the emit side of [`Reader`]).
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    position: usize,
    layer: Layer,
}

impl<'a> Writer<'a> {
    pub(crate) const fn new(buf: &'a mut [u8], layer: Layer) -> Self {
        Self {
            buf,
            position: 0,
            layer,
        }
    }

    pub(crate) const fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.position + bytes.len();
        let available = self.buf.len();
        match self.buf.get_mut(self.position..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.position = end;
                Ok(())
            }
            None => Err(Error::new(
                self.layer,
                self.position,
                crate::error::ErrorKind::BufferTooSmall {
                    needed: end,
                    available,
                },
            )),
        }
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<()> {
        self.put(&[v])
    }

    pub(crate) fn u16_le(&mut self, v: u16) -> Result<()> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn u32_le(&mut self, v: u32) -> Result<()> {
        self.put(&v.to_le_bytes())
    }

    pub(crate) fn u32_be(&mut self, v: u32) -> Result<()> {
        self.put(&v.to_be_bytes())
    }
}

//! Walking boxes, and big-endian reads that report file offsets.

use crate::Error;
use crate::mp4::FourCc;

/// The header of a box (ISO/IEC 14496-12 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The box type.
    pub kind: FourCc,
    /// Bytes of header: 8, 16 with a 64-bit size, plus 16 for a `uuid` box.
    pub header_len: u8,
    /// The whole box's size, header included; `None` when it extends to the end of the
    /// file (size field 0).
    pub size: Option<u64>,
}

impl BoxHeader {
    /// Bytes that always suffice to parse a header.
    pub const MAX_LEN: usize = 32;

    /// Parses the header at the start of `data` (which needs at most [`Self::MAX_LEN`]
    /// bytes).
    pub fn parse(data: &[u8]) -> Result<Self, Error> {
        const CTX: &str = "box header";
        let mut r = Rd::new(data, 0, CTX);
        let size32 = r.u32()?;
        let kind = r.fourcc()?;
        let size = match size32 {
            0 => None,
            1 => Some(r.u64()?),
            n => Some(u64::from(n)),
        };
        if kind.0 == *b"uuid" {
            r.skip(16)?;
        }
        let header_len = r.pos as u8;
        if size.is_some_and(|s| s < u64::from(header_len)) {
            return Err(Error::invalid(CTX, 0, "box size smaller than its header"));
        }
        Ok(Self {
            kind,
            header_len,
            size,
        })
    }
}

/// A box inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Box<'a> {
    /// The box type.
    pub kind: FourCc,
    /// Offset of the box (its header) in the file.
    pub offset: u64,
    /// Bytes of header before `body`.
    pub header_len: u8,
    /// The box content after the header.
    pub body: &'a [u8],
}

impl<'a> Mp4Box<'a> {
    /// The boxes inside this one (for container boxes).
    pub fn children(&self) -> Boxes<'a> {
        Boxes {
            data: self.body,
            pos: 0,
            base: self.offset + u64::from(self.header_len),
        }
    }

    /// The first child of type `kind`; errors from the walk are returned.
    pub(super) fn child(&self, kind: &[u8; 4]) -> Result<Option<Self>, Error> {
        for b in self.children() {
            let b = b?;
            if b.kind.0 == *kind {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// The first child of type `kind`, which must exist.
    pub(super) fn need(
        &self,
        kind: &'static [u8; 4],
        context: &'static str,
    ) -> Result<Self, Error> {
        self.child(kind)?
            .ok_or_else(|| Error::invalid(context, self.offset as usize, "required box missing"))
    }

    pub(super) fn reader(&self, context: &'static str) -> Rd<'a> {
        Rd::new(self.body, self.offset + u64::from(self.header_len), context)
    }
}

/// Walks the boxes laid end to end in `data` (a file, or the body of a container box).
///
/// Yields an error and stops at a header that does not parse or a box that runs past
/// the end of `data`. A size of 0 extends the box to the end of `data`.
pub fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes {
        data,
        pos: 0,
        base: 0,
    }
}

/// Iterator returned by [`boxes`] and [`Mp4Box::children`].
#[derive(Debug, Clone)]
pub struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    /// File offset of `data[0]`.
    base: u64,
}

impl<'a> Boxes<'a> {
    /// The boxes of `data`, which starts at file offset `base`.
    pub(super) fn at(data: &'a [u8], base: u64) -> Self {
        Self { data, pos: 0, base }
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.pos..).filter(|r| !r.is_empty())?;
        let offset = self.base + self.pos as u64;
        let parsed = BoxHeader::parse(rest)
            .map_err(|e| shift(e, offset))
            .and_then(|h| {
                let end = match h.size {
                    None => rest.len(),
                    Some(s) => usize::try_from(s).ok().filter(|s| *s <= rest.len()).ok_or(
                        Error::Truncated {
                            context: "box",
                            offset: offset + rest.len() as u64,
                        },
                    )?,
                };
                Ok((h, end))
            });
        match parsed {
            Ok((h, end)) => {
                self.pos += end;
                Some(Ok(Mp4Box {
                    kind: h.kind,
                    offset,
                    header_len: h.header_len,
                    body: &rest[usize::from(h.header_len)..end],
                }))
            }
            Err(e) => {
                self.pos = self.data.len();
                Some(Err(e))
            }
        }
    }
}

/// Big-endian reads with errors that carry the file offset.
pub(super) struct Rd<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    context: &'static str,
}

impl<'a> Rd<'a> {
    pub(super) fn new(data: &'a [u8], base: u64, context: &'static str) -> Self {
        Self {
            data,
            pos: 0,
            base,
            context,
        }
    }

    pub(super) fn file_offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(super) fn truncated(&self) -> Error {
        Error::Truncated {
            context: self.context,
            offset: self.file_offset(),
        }
    }

    pub(super) fn invalid(&self, reason: &'static str) -> Error {
        Error::Invalid {
            context: self.context,
            offset: self.file_offset(),
            reason,
        }
    }

    pub(super) fn take<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let bytes = self
            .data
            .get(self.pos..)
            .and_then(|r| r.first_chunk::<N>())
            .ok_or_else(|| self.truncated())?;
        self.pos += N;
        Ok(*bytes)
    }

    pub(super) fn skip(&mut self, n: usize) -> Result<(), Error> {
        if self.data.len() - self.pos < n {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    pub(super) fn u16(&mut self) -> Result<u16, Error> {
        self.take().map(u16::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, Error> {
        self.take().map(u32::from_be_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64, Error> {
        self.take().map(u64::from_be_bytes)
    }

    pub(super) fn fourcc(&mut self) -> Result<FourCc, Error> {
        self.take().map(FourCc)
    }

    /// A full box's version and flags; true for version 1.
    pub(super) fn version(&mut self) -> Result<bool, Error> {
        let [version, ..] = self.take::<4>()?;
        match version {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.invalid("unknown box version")),
        }
    }

    pub(super) fn duration(&mut self, v1: bool) -> Result<u64, Error> {
        if v1 {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    /// An entry count, checked against the bytes left for entries of `entry_size`.
    pub(super) fn count(&mut self, entry_size: usize) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n > (self.data.len() - self.pos) / entry_size {
            return Err(self.truncated());
        }
        Ok(n)
    }
}

fn shift(e: Error, by: u64) -> Error {
    match e {
        Error::Truncated { context, offset } => Error::Truncated {
            context,
            offset: offset + by,
        },
        Error::Invalid {
            context,
            offset,
            reason,
        } => Error::Invalid {
            context,
            offset: offset + by,
            reason,
        },
        e => e,
    }
}

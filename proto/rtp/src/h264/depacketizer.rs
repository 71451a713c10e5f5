//! RTP payloads to access units (RFC 6184 5.6-5.8, packetization mode 1).

use std::collections::VecDeque;

use super::{NAL_FU_A, NAL_STAP_A, nal_type};
use crate::Error;
use crate::error::{be_u16, byte, slice};
use crate::packet::RtpPacket;

/// One access unit (a coded picture and what goes with it) rebuilt from RTP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccessUnit {
    /// The 90 kHz RTP timestamp shared by its packets.
    pub timestamp: u32,
    /// Its NAL units, without start codes, in decoding order.
    pub nals: Vec<Vec<u8>>,
    /// True when packets were lost or access units dropped since the previous access unit
    /// returned: references may be missing, and a decoder should wait for an IDR picture.
    pub after_loss: bool,
}

/// Counters of an [`H264Depacketizer`], since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DepacketizerStats {
    /// Packets pushed.
    pub packets: u64,
    /// Packets missing, from sequence number gaps.
    pub lost_packets: u64,
    /// Packets ignored because they arrived after a later one (late or duplicate).
    pub late_packets: u64,
    /// Packets whose payload was malformed.
    pub malformed_packets: u64,
    /// Access units returned.
    pub access_units: u64,
    /// Access units dropped because of loss or malformed packets.
    pub dropped_access_units: u64,
}

/// Rebuilds access units from the RTP packets of one H.264 stream.
///
/// Push packets in arrival order with [`push`](Self::push) (this type has no jitter buffer:
/// a reordered packet counts as a loss, then as late; a jump back of more than 100 followed
/// by a second packet in sequence is taken as the sender restarting), then take whole
/// access units with
/// [`poll`](Self::poll). An access unit ends at the packet with the marker bit, or when
/// the timestamp changes (for senders that never set the marker). The caller filters by
/// SSRC and payload type beforehand.
#[derive(Clone, Debug)]
pub struct H264Depacketizer {
    max_access_unit: usize,
    /// The sequence number expected next.
    expected: Option<u16>,
    /// After a packet far behind `expected`: the sequence number that would confirm a
    /// restarted sequence.
    resync: Option<u16>,
    pending: Option<Pending>,
    /// The timestamp of an access unit being dropped.
    discarding: Option<u32>,
    lost_since_last: bool,
    ready: VecDeque<AccessUnit>,
    stats: DepacketizerStats,
}

#[derive(Clone, Debug)]
struct Pending {
    timestamp: u32,
    nals: Vec<Vec<u8>>,
    /// Bytes in `nals` and `fragment`.
    bytes: usize,
    /// The NAL unit FU-A fragments are building, header first.
    fragment: Option<Vec<u8>>,
}

impl Default for H264Depacketizer {
    fn default() -> Self {
        Self::new()
    }
}

impl H264Depacketizer {
    /// The default bound on an access unit, in bytes (NAL units, without framing).
    pub const DEFAULT_MAX_ACCESS_UNIT: usize = 4 << 20;

    /// A depacketizer with [`DEFAULT_MAX_ACCESS_UNIT`](Self::DEFAULT_MAX_ACCESS_UNIT).
    pub fn new() -> Self {
        Self::with_max_access_unit(Self::DEFAULT_MAX_ACCESS_UNIT)
    }

    /// A depacketizer that drops access units larger than `max_bytes` (with
    /// [`Error::TooLarge`]), bounding the memory a peer can make it hold.
    pub fn with_max_access_unit(max_bytes: usize) -> Self {
        Self {
            max_access_unit: max_bytes,
            expected: None,
            resync: None,
            pending: None,
            discarding: None,
            lost_since_last: false,
            ready: VecDeque::new(),
            stats: DepacketizerStats::default(),
        }
    }

    /// Takes one RTP packet.
    ///
    /// An error means the payload was malformed; the access unit it belongs to is dropped
    /// and the depacketizer carries on with the next one.
    pub fn push(&mut self, packet: &RtpPacket<'_>) -> Result<(), Error> {
        self.push_payload(
            packet.sequence(),
            packet.timestamp(),
            packet.marker(),
            packet.payload(),
        )
    }

    /// Like [`push`](Self::push), with the packet's fields given one by one.
    pub fn push_payload(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.stats.packets += 1;
        if let Some(expected) = self.expected {
            let ahead = sequence.wrapping_sub(expected) as i16;
            if ahead < 0 {
                // Far behind, the sender may have restarted its sequence: follow it once two
                // packets in a row agree (RFC 3550 A.1). Otherwise the packet is late.
                if ahead >= -MAX_MISORDER || self.resync != Some(sequence) {
                    if ahead < -MAX_MISORDER {
                        self.resync = Some(sequence.wrapping_add(1));
                    }
                    self.stats.late_packets += 1;
                    return Ok(());
                }
                self.discard(timestamp);
            } else if ahead > 0 {
                // The missing packets may have ended the pending access unit or begun this
                // packet's: both are broken.
                self.stats.lost_packets += ahead as u64;
                self.discard(timestamp);
            }
        }
        self.expected = Some(sequence.wrapping_add(1));
        self.resync = None;

        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.timestamp != timestamp)
        {
            self.finish();
        }
        if self.discarding.is_some_and(|t| t != timestamp) {
            self.discarding = None;
        }
        if self.discarding == Some(timestamp) {
            if marker {
                self.discarding = None;
            }
            return Ok(());
        }
        if let Err(e) = self.take(timestamp, payload) {
            self.stats.malformed_packets += 1;
            self.discard(timestamp);
            if marker {
                self.discarding = None;
            }
            return Err(e);
        }
        if marker {
            self.finish();
        }
        Ok(())
    }

    /// The next complete access unit, oldest first.
    pub fn poll(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Ends the access unit in progress, as at the end of a stream: if it is intact, the
    /// next [`poll`](Self::poll) returns it.
    pub fn flush(&mut self) {
        self.finish();
    }

    /// The counters.
    pub fn stats(&self) -> DepacketizerStats {
        self.stats
    }

    /// Adds one payload to the pending access unit.
    fn take(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), Error> {
        let header = byte(payload, 0, "H.264 payload header")?;
        let limit = self.max_access_unit;
        let pending = self.pending.get_or_insert_with(|| Pending {
            timestamp,
            nals: Vec::new(),
            bytes: 0,
            fragment: None,
        });
        match nal_type(header) {
            1..=23 => {
                pending.expect_no_fragment("single NAL unit")?;
                pending.add(payload, limit)
            }
            NAL_STAP_A => {
                const CTX: &str = "STAP-A";
                pending.expect_no_fragment(CTX)?;
                if payload.len() == 1 {
                    return Err(malformed(CTX, 0, "no NAL units"));
                }
                // Check every size before taking any unit.
                let mut pos = 1;
                while pos < payload.len() {
                    let size = usize::from(be_u16(payload, pos, "STAP-A NAL unit size")?);
                    if size == 0 {
                        return Err(malformed(CTX, pos, "NAL unit of size zero"));
                    }
                    let nal = slice(payload, pos + 2, size, "STAP-A NAL unit")?;
                    if !(1..=23).contains(&nal_type(nal[0])) {
                        return Err(malformed(CTX, pos + 2, "NAL unit type outside 1..=23"));
                    }
                    pos += 2 + size;
                }
                let mut pos = 1;
                while let Ok(size) = be_u16(payload, pos, CTX) {
                    let nal = slice(payload, pos + 2, usize::from(size), CTX)?;
                    pending.add(nal, limit)?;
                    pos += 2 + nal.len();
                }
                Ok(())
            }
            NAL_FU_A => {
                const CTX: &str = "FU-A";
                let fu = byte(payload, 1, "FU-A header")?;
                let (start, end, kind) = (fu & 0x80 != 0, fu & 0x40 != 0, nal_type(fu));
                if start && end {
                    return Err(malformed(CTX, 1, "start and end bits both set"));
                }
                if !(1..=23).contains(&kind) {
                    return Err(malformed(CTX, 1, "NAL unit type outside 1..=23"));
                }
                let data = payload.get(2..).unwrap_or_default();
                if pending.bytes + data.len() + usize::from(start) > limit {
                    return Err(too_large(limit));
                }
                let fragment = if start {
                    pending.expect_no_fragment("FU-A start")?;
                    let mut nal = Vec::with_capacity(1 + data.len());
                    nal.push((header & 0xe0) | kind);
                    pending.fragment.insert(nal)
                } else {
                    match pending.fragment.as_mut() {
                        Some(f) if nal_type(f[0]) == kind => f,
                        Some(_) => return Err(malformed(CTX, 1, "type differs from the start")),
                        None => return Err(malformed(CTX, 1, "continuation without a start")),
                    }
                };
                fragment.extend_from_slice(data);
                pending.bytes += data.len() + usize::from(start);
                if end && let Some(nal) = pending.fragment.take() {
                    pending.nals.push(nal);
                }
                Ok(())
            }
            _ => Err(malformed(
                "H.264 payload header",
                0,
                "NAL unit type not allowed in packetization mode 1",
            )),
        }
    }

    /// Drops the pending access unit and the one `timestamp` belongs to.
    fn discard(&mut self, timestamp: u32) {
        self.lost_since_last = true;
        if let Some(p) = self.pending.take() {
            self.stats.dropped_access_units += 1;
            if p.timestamp == timestamp {
                self.discarding = Some(timestamp);
                return;
            }
        }
        if self.discarding != Some(timestamp) {
            self.discarding = Some(timestamp);
            self.stats.dropped_access_units += 1;
        }
    }

    /// Ends the pending access unit: queues it, or drops it if a NAL unit is unfinished.
    fn finish(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if p.fragment.is_some() || p.nals.is_empty() {
            self.stats.dropped_access_units += 1;
            self.lost_since_last = true;
            return;
        }
        self.stats.access_units += 1;
        self.ready.push_back(AccessUnit {
            timestamp: p.timestamp,
            nals: p.nals,
            after_loss: std::mem::take(&mut self.lost_since_last),
        });
    }
}

impl Pending {
    fn expect_no_fragment(&self, context: &'static str) -> Result<(), Error> {
        match self.fragment {
            Some(_) => Err(malformed(context, 0, "inside an unfinished FU-A")),
            None => Ok(()),
        }
    }

    fn add(&mut self, nal: &[u8], limit: usize) -> Result<(), Error> {
        if self.bytes + nal.len() > limit {
            return Err(too_large(limit));
        }
        self.bytes += nal.len();
        self.nals.push(nal.to_vec());
        Ok(())
    }
}

/// How far behind the expected sequence number a packet counts as late rather than as a
/// possible restart of the sequence (RFC 3550 A.1 `MAX_MISORDER`).
const MAX_MISORDER: i16 = 100;

fn malformed(context: &'static str, offset: usize, reason: &'static str) -> Error {
    Error::Malformed {
        context,
        offset,
        reason,
    }
}

fn too_large(limit: usize) -> Error {
    Error::TooLarge {
        context: "H.264 access unit",
        limit,
    }
}

#[cfg(test)]
mod tests;

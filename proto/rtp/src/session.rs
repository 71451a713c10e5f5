//! Per-stream RTP state: the sender's sequence numbers, counters and sender reports, and the
//! receiver's sequence extension, loss and jitter (RFC 3550 6.4, A.1, A.3, A.8).
//!
//! Nothing here reads a clock or draws a random number: the SSRC and the initial sequence
//! number and timestamp offset (random by RFC 3550 5.1) come from the caller, and so does
//! the wall-clock time of every report.

use crate::packet::{Csrcs, RtpHeader};
use crate::rtcp::{
    Bye, NtpTimestamp, ReportBlock, RtcpPacket, SdesChunk, SenderInfo, SenderReport, write_compound,
};
use crate::{Error, Payload};

/// The fixed parameters of an [`RtpSender`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenderConfig {
    /// The stream's synchronization source, random and unique in the session.
    pub ssrc: u32,
    /// The payload type, 0..=127 (96 for H.264 in peercam's SDP; 0, 8 or 9 for audio).
    pub payload_type: u8,
    /// The sequence number of the first packet, random.
    pub initial_sequence: u16,
    /// Added to every media timestamp to give the RTP timestamp, random.
    pub timestamp_offset: u32,
}

/// The sending side of one RTP stream.
///
/// Turns payloads with media timestamps (presentation time in the stream's clock, starting
/// wherever the source starts) into RTP packets with consecutive sequence numbers and
/// offset timestamps, counts what it sent, and makes the sender reports that let a receiver
/// map RTP time to wall-clock time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpSender {
    config: SenderConfig,
    next_sequence: u16,
    packet_count: u32,
    octet_count: u32,
}

impl RtpSender {
    /// A sender that has sent nothing. Fails when the payload type exceeds 127.
    pub fn new(config: SenderConfig) -> Result<Self, Error> {
        if config.payload_type > 0x7f {
            return Err(Error::Unrepresentable {
                context: "RTP sender",
                reason: "payload type above 127",
            });
        }
        Ok(Self {
            config,
            next_sequence: config.initial_sequence,
            packet_count: 0,
            octet_count: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// The sequence number the next packet will carry (for the RTSP `RTP-Info` header).
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// The RTP timestamp for a media timestamp (for the RTSP `RTP-Info` header).
    pub fn rtp_timestamp(&self, media_timestamp: u32) -> u32 {
        media_timestamp.wrapping_add(self.config.timestamp_offset)
    }

    /// Packets sent, modulo 2³².
    pub fn packet_count(&self) -> u32 {
        self.packet_count
    }

    /// Payload octets sent, modulo 2³².
    pub fn octet_count(&self) -> u32 {
        self.octet_count
    }

    /// Appends the RTP packet carrying `payload` to `out`; returns its sequence number.
    pub fn write(&mut self, payload: &Payload, out: &mut Vec<u8>) -> Result<u16, Error> {
        self.write_raw(&payload.data, payload.timestamp, payload.marker, out)
    }

    /// Appends an RTP packet carrying `data` at `media_timestamp` to `out`; returns its
    /// sequence number.
    pub fn write_raw(
        &mut self,
        data: &[u8],
        media_timestamp: u32,
        marker: bool,
        out: &mut Vec<u8>,
    ) -> Result<u16, Error> {
        let sequence = self.next_sequence;
        RtpHeader {
            marker,
            payload_type: self.config.payload_type,
            sequence,
            timestamp: self.rtp_timestamp(media_timestamp),
            ssrc: self.config.ssrc,
            csrcs: Csrcs::new(),
            extension: None,
        }
        .write(data, out)?;
        self.next_sequence = sequence.wrapping_add(1);
        self.packet_count = self.packet_count.wrapping_add(1);
        // RTP payloads are far below 4 GiB; the count wraps by definition.
        self.octet_count = self.octet_count.wrapping_add(data.len() as u32);
        Ok(sequence)
    }

    /// The sender report for wall-clock time `now_unix_us`, at which the media clock reads
    /// `media_timestamp` (same clock and origin as the payloads' timestamps; the caller
    /// knows the mapping from capture time). Add reception reports to `reports` if this end
    /// also receives.
    pub fn sender_report(&self, now_unix_us: u64, media_timestamp: u32) -> SenderReport<'static> {
        SenderReport {
            ssrc: self.config.ssrc,
            sender_info: SenderInfo {
                ntp_timestamp: NtpTimestamp::from_unix_micros(now_unix_us),
                rtp_timestamp: self.rtp_timestamp(media_timestamp),
                packet_count: self.packet_count,
                octet_count: self.octet_count,
            },
            reports: Vec::new(),
            extension: &[],
        }
    }

    /// Appends a compound RTCP packet to `out`: the [`sender_report`](Self::sender_report)
    /// and an SDES with `cname` (RFC 3550 6.1 requires both in every compound).
    pub fn write_rtcp(
        &self,
        now_unix_us: u64,
        media_timestamp: u32,
        cname: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        write_compound(
            &[
                RtcpPacket::SenderReport(self.sender_report(now_unix_us, media_timestamp)),
                RtcpPacket::SourceDescription(vec![SdesChunk::cname(self.config.ssrc, cname)]),
            ],
            out,
        )
    }

    /// Like [`write_rtcp`](Self::write_rtcp), followed by a BYE for this stream, sent when
    /// it ends (RFC 3550 6.6).
    pub fn write_bye(
        &self,
        now_unix_us: u64,
        media_timestamp: u32,
        cname: &[u8],
        reason: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        write_compound(
            &[
                RtcpPacket::SenderReport(self.sender_report(now_unix_us, media_timestamp)),
                RtcpPacket::SourceDescription(vec![SdesChunk::cname(self.config.ssrc, cname)]),
                RtcpPacket::Bye(Bye {
                    sources: vec![self.config.ssrc],
                    reason,
                }),
            ],
            out,
        )
    }
}

/// The extended sequence number nearest to `reference` whose low 16 bits are `sequence`.
///
/// Up to 32768 behind the reference extends backwards, up to 32767 ahead forwards.
/// Never below zero: near the origin, a backward value that would be negative is taken
/// forwards instead.
pub fn extend_sequence(reference: u64, sequence: u16) -> u64 {
    let delta = i64::from(sequence.wrapping_sub(reference as u16) as i16);
    reference
        .checked_add_signed(delta)
        .unwrap_or_else(|| u64::from(sequence))
}

/// The extended timestamp nearest to `reference` whose low 32 bits are `timestamp`, as
/// [`extend_sequence`] does for sequence numbers.
pub fn extend_timestamp(reference: u64, timestamp: u32) -> u64 {
    let delta = i64::from(timestamp.wrapping_sub(reference as u32) as i32);
    reference
        .checked_add_signed(delta)
        .unwrap_or_else(|| u64::from(timestamp))
}

/// Extends the 16-bit sequence numbers of one stream to 64 bits as they arrive.
///
/// The first sequence number `s` maps to `65536 + s`, so packets reordered ahead of it
/// still extend to smaller values; only differences between extended values mean anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SequenceExtender {
    highest: Option<u64>,
}

impl SequenceExtender {
    /// An extender that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extends `sequence`, relative to the highest so far, and records it.
    pub fn extend(&mut self, sequence: u16) -> u64 {
        let ext = match self.highest {
            None => (1 << 16) + u64::from(sequence),
            Some(h) => extend_sequence(h, sequence),
        };
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        ext
    }

    /// The highest extended sequence number seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }
}

/// Reception statistics of one source, for the report blocks of receiver reports.
///
/// Feed it every RTP packet of the source and every sender report from it, with their
/// arrival times; ask for a [`ReportBlock`] when sending RTCP. It does not implement the
/// probation and resynchronization of RFC 3550 A.1: when the source restarts (a new SSRC,
/// or a jump in sequence numbers), start a new `ReceiverStats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverStats {
    ssrc: u32,
    clock_rate: u32,
    seq: SequenceExtender,
    base: Option<u64>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in timestamp units, times 16 (RFC 3550 A.8).
    jitter_x16: u64,
    last_transit: Option<u32>,
    /// Middle 32 bits of the last SR's NTP timestamp, and when it arrived.
    last_sr: Option<(u32, u64)>,
}

impl ReceiverStats {
    /// Statistics of source `ssrc`, whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate,
            seq: SequenceExtender::new(),
            base: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter_x16: 0,
            last_transit: None,
            last_sr: None,
        }
    }

    /// Records an RTP packet that arrived at `arrival_unix_us`; returns its extended
    /// sequence number.
    pub fn on_rtp(&mut self, sequence: u16, rtp_timestamp: u32, arrival_unix_us: u64) -> u64 {
        let ext = self.seq.extend(sequence);
        self.base = Some(self.base.map_or(ext, |b| b.min(ext)));
        self.received += 1;
        // Arrival time in timestamp units; only differences matter, so it may wrap.
        let arrival =
            (u128::from(arrival_unix_us) * u128::from(self.clock_rate) / 1_000_000) as u32;
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = u64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter_x16 = (self.jitter_x16 + d).saturating_sub((self.jitter_x16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
        ext
    }

    /// Records a sender report from the source that arrived at `arrival_unix_us`.
    pub fn on_sender_report(&mut self, info: &SenderInfo, arrival_unix_us: u64) {
        self.last_sr = Some((info.ntp_timestamp.middle_32(), arrival_unix_us));
    }

    /// Packets received, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the first and highest sequence numbers seen.
    pub fn expected(&self) -> u64 {
        match (self.base, self.seq.highest()) {
            (Some(b), Some(h)) => h - b + 1,
            _ => 0,
        }
    }

    /// Packets lost since the start; negative when duplicates outnumber losses.
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// The interarrival jitter, in timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_x16 >> 4).unwrap_or(u32::MAX)
    }

    /// The report block on this source at `now_unix_us`; starts a new interval for the
    /// fraction lost.
    pub fn report_block(&mut self, now_unix_us: u64) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval as u64) << 8) / expected_interval
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((middle, at)) => {
                let delay = u128::from(now_unix_us.saturating_sub(at)) * 65_536 / 1_000_000;
                (middle, u32::try_from(delay).unwrap_or(u32::MAX))
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: u8::try_from(fraction_lost).unwrap_or(u8::MAX),
            cumulative_lost: self.cumulative_lost().clamp(-(1 << 23), (1 << 23) - 1) as i32,
            // Cycles counted from the first packet, as RFC 3550 A.1 does.
            highest_sequence: self.seq.highest().map_or(0, |h| h.saturating_sub(1 << 16)) as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests;

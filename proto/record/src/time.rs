//! Wall-clock times of recordings: RFC 3339 (API and CLI) and RFC 2326 3.7 absolute time
//! (`Range: clock=20261124T033000.250Z-`), all as Unix milliseconds (UTC).

use crate::Error;

const MS_PER_DAY: i64 = 86_400_000;
/// Latest time accepted: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: u64 = 253_402_300_799_999;

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str, text: &str) -> Result<u32, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::time(text, "expected digits"));
    }
    s.parse().map_err(|_| Error::time(text, "number too large"))
}

/// Milliseconds from a fraction's digits (`"25"` is 250 ms; digits past ms are dropped).
fn fraction_ms(frac: &str, text: &str) -> Result<u64, Error> {
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::time(text, "bad fraction of a second"));
    }
    let mut ms = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms += u64::from(b - b'0') * 10u64.pow(2 - i as u32);
    }
    Ok(ms)
}

fn assemble(
    text: &str,
    (y, mo, d): (u32, u32, u32),
    (h, mi, s): (u32, u32, u32),
    ms: u64,
    offset_min: i64,
) -> Result<u64, Error> {
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&mo) {
        return Err(Error::time(text, "year 1970-9999, month 1-12"));
    }
    if d == 0 || d > days_in_month(i64::from(y), mo) || h > 23 || mi > 59 || s > 59 {
        return Err(Error::time(text, "no such date or time of day"));
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let t = days * MS_PER_DAY + i64::from(h * 3_600_000 + mi * 60_000 + s * 1000) + ms as i64
        - offset_min * 60_000;
    u64::try_from(t)
        .ok()
        .filter(|t| *t <= MAX_MS)
        .ok_or_else(|| Error::time(text, "before 1970 or after 9999"))
}

/// Parses RFC 3339 (`2026-11-24T03:30:00Z`, `2026-11-24T04:30:00.5+01:00`; `t`, `z` and a
/// space separator are accepted).
pub fn parse_rfc3339(text: &str) -> Result<u64, Error> {
    let t = text.trim();
    if t.len() < 20 || !t.is_ascii() {
        return Err(Error::time(
            text,
            "expected YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)",
        ));
    }
    let b = t.as_bytes();
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(Error::time(
            text,
            "expected YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)",
        ));
    }
    let date = (
        digits(&t[0..4], text)?,
        digits(&t[5..7], text)?,
        digits(&t[8..10], text)?,
    );
    let tod = (
        digits(&t[11..13], text)?,
        digits(&t[14..16], text)?,
        digits(&t[17..19], text)?,
    );
    let mut rest = &t[19..];
    let mut ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        ms = fraction_ms(&r[..end], text)?;
        rest = &r[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let h = i64::from(digits(&o[1..3], text)?);
            let m = i64::from(digits(&o[4..6], text)?);
            if h > 23 || m > 59 {
                return Err(Error::time(text, "bad UTC offset"));
            }
            let v = h * 60 + m;
            if o.starts_with('-') { -v } else { v }
        }
        _ => return Err(Error::time(text, "expected Z or +HH:MM after the time")),
    };
    assemble(text, date, tod, ms, offset)
}

/// Formats as RFC 3339 in UTC, with milliseconds only when not whole seconds.
pub fn format_rfc3339(ms: u64) -> String {
    let ms = ms.min(MAX_MS);
    let (y, mo, d) = civil_from_days((ms / MS_PER_DAY as u64) as i64);
    let r = ms % MS_PER_DAY as u64;
    let (h, mi, s, f) = (r / 3_600_000, r / 60_000 % 60, r / 1000 % 60, r % 1000);
    if f == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
    }
}

/// Parses an RFC 2326 3.7 absolute time: `YYYYMMDDTHHMMSS[.fraction]Z`.
pub fn parse_clock(text: &str) -> Result<u64, Error> {
    let t = text.trim();
    if t.len() < 16 || !t.is_ascii() || t.as_bytes()[8] != b'T' || !t.ends_with('Z') {
        return Err(Error::time(text, "expected YYYYMMDDTHHMMSS[.fraction]Z"));
    }
    let date = (
        digits(&t[0..4], text)?,
        digits(&t[4..6], text)?,
        digits(&t[6..8], text)?,
    );
    let tod = (
        digits(&t[9..11], text)?,
        digits(&t[11..13], text)?,
        digits(&t[13..15], text)?,
    );
    let rest = &t[15..t.len() - 1];
    let ms = match rest.strip_prefix('.') {
        Some(f) => fraction_ms(f, text)?,
        None if rest.is_empty() => 0,
        None => return Err(Error::time(text, "expected YYYYMMDDTHHMMSS[.fraction]Z")),
    };
    assemble(text, date, tod, ms, 0)
}

/// Formats an RFC 2326 absolute time, with milliseconds.
pub fn format_clock(ms: u64) -> String {
    let s = format_rfc3339(ms);
    // 2026-11-24T03:30:00[.250]Z -> 20261124T033000.250Z
    let (date, rest) = s.split_at(10);
    let mut out: String = date.chars().filter(|c| *c != '-').collect();
    out.push('T');
    out.extend(rest[1..9].chars().filter(|c| *c != ':'));
    out.push_str(&format!(".{:03}Z", ms.min(MAX_MS) % 1000));
    out
}

/// A requested span of wall time; `end_ms` of `None` means "until the recordings end".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First instant, Unix ms.
    pub start_ms: u64,
    /// Instant after the last, Unix ms.
    pub end_ms: Option<u64>,
}

/// Parses the value of an RTSP `Range: clock=START-[END]` header.
pub fn parse_clock_range(value: &str) -> Result<Span, Error> {
    let v = value.split(';').next().unwrap_or_default().trim();
    let Some(times) = v.strip_prefix("clock=") else {
        return Err(Error::time(value, "expected clock=START-[END]"));
    };
    let (a, b) = times
        .split_once('-')
        .ok_or_else(|| Error::time(value, "expected clock=START-[END]"))?;
    let start_ms = parse_clock(a)?;
    let end_ms = if b.trim().is_empty() {
        None
    } else {
        Some(parse_clock(b)?)
    };
    if end_ms.is_some_and(|e| e <= start_ms) {
        return Err(Error::time(value, "the end must be after the start"));
    }
    Ok(Span { start_ms, end_ms })
}

/// Formats a `clock=` range value.
pub fn format_clock_range(span: Span) -> String {
    match span.end_ms {
        Some(e) => format!("clock={}-{}", format_clock(span.start_ms), format_clock(e)),
        None => format!("clock={}-", format_clock(span.start_ms)),
    }
}

/// Converts a presentation time in `timescale` ticks since `base_ms` to Unix ms, refusing
/// overflow (F9: no wrap on 90 kHz arithmetic).
pub fn ticks_to_ms(base_ms: u64, ticks: u64, timescale: u64) -> Option<u64> {
    if timescale == 0 {
        return None;
    }
    let ms = u128::from(ticks) * 1000 / u128::from(timescale);
    base_ms.checked_add(u64::try_from(ms).ok()?)
}

/// Converts a wall time to ticks after `base_ms` (0 when before it), refusing overflow.
pub fn ms_to_ticks(base_ms: u64, at_ms: u64, timescale: u64) -> Option<u64> {
    let d = u128::from(at_ms.saturating_sub(base_ms));
    u64::try_from(d * u128::from(timescale) / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2026-11-23T00:00:00Z").unwrap(),
            1_795_392_000_000
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T01:00:00.5+01:00").unwrap(),
            1_795_392_000_500
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00-05:30").unwrap(),
            parse_rfc3339("2024-02-29T17:30:00Z").unwrap()
        );
        assert_eq!(
            format_rfc3339(1_795_392_000_500),
            "2026-11-23T00:00:00.500Z"
        );
        assert_eq!(format_clock(1_795_392_000_500), "20261123T000000.500Z");
        assert_eq!(
            parse_clock("20261123T000000.5Z").unwrap(),
            1_795_392_000_500
        );
        assert_eq!(parse_clock("20261123T000000Z").unwrap(), 1_795_392_000_000);
    }

    #[test]
    fn h626_8_7_2_bad_times_are_refused_with_the_reason() {
        for bad in [
            "",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+1:00",
            "1969-12-31T23:59:59Z",
            "2026-01-01T00:00:00.Z",
            "２026-01-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(parse_clock_range("clock=20261123T000000Z-20261122T000000Z").is_err());
        assert!(parse_clock_range("npt=0-").is_err());
        assert_eq!(
            parse_clock_range("clock=20261123T000000Z-").unwrap(),
            Span {
                start_ms: 1_795_392_000_000,
                end_ms: None
            }
        );
    }

    #[test]
    fn tick_arithmetic_does_not_wrap() {
        assert_eq!(ticks_to_ms(1000, 90_000, 90_000), Some(2000));
        assert_eq!(ticks_to_ms(u64::MAX, 90_000, 90_000), None);
        assert_eq!(ticks_to_ms(0, u64::MAX, 90_000), Some(u64::MAX / 90));
        assert_eq!(ms_to_ticks(1000, 500, 90_000), Some(0));
        assert_eq!(ms_to_ticks(0, u64::MAX, 90_000), None);
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(ms in 0u64..=MAX_MS) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(ms)).unwrap(), ms);
            prop_assert_eq!(parse_clock(&format_clock(ms)).unwrap(), ms);
        }

        #[test]
        fn clock_range_round_trips(a in 0u64..MAX_MS, len in proptest::option::of(1u64..1_000_000_000)) {
            let span = Span { start_ms: a, end_ms: len.map(|l| (a + l).min(MAX_MS)).filter(|e| *e > a) };
            prop_assert_eq!(parse_clock_range(&format_clock_range(span)).unwrap(), span);
        }

        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = parse_rfc3339(&s);
            let _ = parse_clock(&s);
            let _ = parse_clock_range(&s);
        }
    }
}

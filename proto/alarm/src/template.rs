//! Alarm message templates (H.626.4 6.1.9): what the SMS (or another text channel) says
//! when an alarm of a kind is raised.
//!
//! A template is text with placeholders in braces: `{camera}`, `{time}` (in the user's time
//! zone), `{kind}`, `{detail}` and `{link}`; `{{` and `}}` stand for one brace. [`parse`]
//! refuses an unknown placeholder, an unclosed or stray brace and an over-long text, naming
//! the position (in characters, from 0). [`Template::render`] fills it in, and [`sms_cost`]
//! tells the encoding (GSM-7 or UCS-2) and how many SMS segments the text takes.

use crate::AlarmKind;

/// Longest template, characters.
pub const MAX_TEMPLATE_CHARS: usize = 320;
/// Longest rendered message, characters (longer values are cut).
pub const MAX_MESSAGE_CHARS: usize = 480;
/// Longest value of one placeholder, characters (longer values are cut with `…`).
pub const MAX_VALUE_CHARS: usize = 120;

/// Why a template was refused; every variant tells where (characters from 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `{name}` is not one of the placeholders.
    #[error(
        "unknown placeholder {{{name}}} at position {at}; use {{camera}}, {{time}}, {{kind}}, {{detail}} or {{link}}"
    )]
    UnknownPlaceholder {
        /// The name between the braces.
        name: String,
        /// Where its `{` is.
        at: usize,
    },
    /// A `{` without its `}`.
    #[error("unclosed {{ at position {at}; write {{{{ for a brace")]
    Unclosed {
        /// Where the `{` is.
        at: usize,
    },
    /// A `}` that closes nothing.
    #[error("stray }} at position {at}; write }}}} for a brace")]
    Stray {
        /// Where it is.
        at: usize,
    },
    /// Too long.
    #[error("the template has {chars} characters; at most {MAX_TEMPLATE_CHARS}")]
    TooLong {
        /// How many it has.
        chars: usize,
    },
    /// Nothing to send.
    #[error("the template is empty")]
    Empty,
}

/// A value filled in by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// The camera's name (or id).
    Camera,
    /// When the alarm happened, in the user's time zone.
    Time,
    /// The alarm's kind, e.g. `motion`.
    Kind,
    /// The alarm's detail text.
    Detail,
    /// A link to the alarm in the web client.
    Link,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Self; 5] = [
        Self::Camera,
        Self::Time,
        Self::Kind,
        Self::Detail,
        Self::Link,
    ];

    /// The name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Time => "time",
            Self::Kind => "kind",
            Self::Detail => "detail",
            Self::Link => "link",
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text (braces already unescaped).
    Text(String),
    /// A value.
    Value(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    /// `{camera}`.
    pub camera: String,
    /// `{time}`, already formatted (see [`format_time`]).
    pub time: String,
    /// `{kind}`.
    pub kind: String,
    /// `{detail}`.
    pub detail: String,
    /// `{link}`.
    pub link: String,
}

/// H.626.4 6.1.9: parses and checks a template.
pub fn parse(text: &str) -> Result<Template, TemplateError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_TEMPLATE_CHARS {
        return Err(TemplateError::TooLong { chars: chars.len() });
    }
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(TemplateError::Empty);
    }
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('{', Some('{')) | ('}', Some('}')) => {
                lit.push(chars[i]);
                i += 2;
            }
            ('{', _) => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '}' || c == '{')
                    .map(|p| p + i + 1)
                    .filter(|&p| chars[p] == '}')
                    .ok_or(TemplateError::Unclosed { at: i })?;
                let name: String = chars[i + 1..close].iter().collect();
                let value = Placeholder::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or(TemplateError::UnknownPlaceholder { name, at: i })?;
                if !lit.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut lit)));
                }
                parts.push(Part::Value(value));
                i = close + 1;
            }
            ('}', _) => return Err(TemplateError::Stray { at: i }),
            (c, _) => {
                lit.push(c);
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Text(lit));
    }
    Ok(Template { parts })
}

impl Template {
    /// The pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The template written back (braces escaped): `parse(t.source()) == t`.
    pub fn source(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(&t.replace('{', "{{").replace('}', "}}")),
                Part::Value(v) => {
                    out.push('{');
                    out.push_str(v.name());
                    out.push('}');
                }
            }
        }
        out
    }

    /// Fills the template in; each value is cut to [`MAX_VALUE_CHARS`] and the message to
    /// [`MAX_MESSAGE_CHARS`].
    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Value(v) => {
                    let value = match v {
                        Placeholder::Camera => &values.camera,
                        Placeholder::Time => &values.time,
                        Placeholder::Kind => &values.kind,
                        Placeholder::Detail => &values.detail,
                        Placeholder::Link => &values.link,
                    };
                    out.push_str(&cut(value, MAX_VALUE_CHARS));
                }
            }
        }
        cut(&out, MAX_MESSAGE_CHARS)
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The default template of `kind` in `language` (a BCP 47 tag; English when the language
/// has none).
pub fn default_template(kind: AlarmKind, language: &str) -> &'static str {
    let german = language.split(['-', '_']).next() == Some("de");
    match (kind, german) {
        (AlarmKind::Motion, false) => "Motion on {camera} at {time}. {link}",
        (AlarmKind::Motion, true) => "Bewegung bei {camera} um {time}. {link}",
        (AlarmKind::Input, false) => "Alarm input on {camera} at {time}: {detail} {link}",
        (AlarmKind::VideoLoss, false) => "{camera} lost its picture at {time}. {link}",
        (AlarmKind::Tamper, false) => "{camera} was covered or moved at {time}. {link}",
        (AlarmKind::Login, false) => "Someone signed in to your account at {time}. {detail}",
        (AlarmKind::Logout, false) => "Someone signed out of your account at {time}.",
        (AlarmKind::StorageFull, false) => "Storage of {camera} is full ({time}). {detail}",
        (AlarmKind::CameraOffline, false) => "{camera} went offline at {time}.",
        (AlarmKind::CameraOnline, false) => "{camera} is back online at {time}.",
        (AlarmKind::RecorderOffline, false) => "Recorder {camera} went offline at {time}.",
        (AlarmKind::UpgradeResult, false) => "Upgrade of {camera} at {time}: {detail}",
        (_, true) => "Alarm ({kind}) bei {camera} um {time}. {detail} {link}",
        _ => "Alarm ({kind}) on {camera} at {time}. {detail} {link}",
    }
}

/// `at_ms` (Unix ms) as `YYYY-MM-DD HH:MM` local time at `utc_offset_min` east of UTC.
pub fn format_time(at_ms: u64, utc_offset_min: i16) -> String {
    let secs = i64::try_from(at_ms / 1000).unwrap_or(i64::MAX / 2) + i64::from(utc_offset_min) * 60;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if utc_offset_min < 0 { '-' } else { '+' };
    let off = utc_offset_min.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC{sign}{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        off / 60,
        off % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// How an SMS is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    /// The GSM 03.38 7-bit alphabet (160 per single SMS, 153 per part).
    Gsm7,
    /// UCS-2 (70 per single SMS, 67 per part).
    Ucs2,
}

impl SmsEncoding {
    /// `gsm7` or `ucs2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "gsm7",
            Self::Ucs2 => "ucs2",
        }
    }
}

/// What a text costs as SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsCost {
    /// The encoding it needs.
    pub encoding: SmsEncoding,
    /// Code units: septets (extension characters count 2) or UTF-16 units.
    pub units: usize,
    /// Segments (0 for an empty text).
    pub segments: usize,
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Septets of `c` in GSM-7, or `None` if it needs UCS-2.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// H.626.4 6.1.9: the encoding and segment count of `text` as SMS.
pub fn sms_cost(text: &str) -> SmsCost {
    let gsm: Option<usize> = text.chars().map(gsm_septets).sum();
    let (encoding, units, single, part) = match gsm {
        Some(septets) => (SmsEncoding::Gsm7, septets, 160, 153),
        None => (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = match units {
        0 => 0,
        u if u <= single => 1,
        u => u.div_ceil(part),
    };
    SmsCost {
        encoding,
        units,
        segments,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn h626_6_1_9_template_renders_placeholders_and_escapes() {
        let t = parse("{{x}} {camera}: {kind} at {time} {detail}{link}").unwrap();
        let v = Values {
            camera: "Door".into(),
            time: "2026-01-01 10:00 UTC+00:00".into(),
            kind: "motion".into(),
            detail: String::new(),
            link: "https://cmu/a/1".into(),
        };
        assert_eq!(
            t.render(&v),
            "{x} Door: motion at 2026-01-01 10:00 UTC+00:00 https://cmu/a/1"
        );
        assert_eq!(parse(&t.source()).unwrap(), t);
    }

    #[test]
    fn h626_6_1_9_template_refusals_name_the_position() {
        assert_eq!(
            parse("ab {cam}"),
            Err(TemplateError::UnknownPlaceholder {
                name: "cam".into(),
                at: 3
            })
        );
        assert_eq!(parse("x {camera"), Err(TemplateError::Unclosed { at: 2 }));
        assert_eq!(parse("x {a{b}"), Err(TemplateError::Unclosed { at: 2 }));
        assert_eq!(parse("x } y"), Err(TemplateError::Stray { at: 2 }));
        assert_eq!(parse("  "), Err(TemplateError::Empty));
        assert!(matches!(
            parse(&"a".repeat(MAX_TEMPLATE_CHARS + 1)),
            Err(TemplateError::TooLong { .. })
        ));
        let msg = parse("{foo}").unwrap_err().to_string();
        assert!(msg.contains("{foo}") && msg.contains("position 0"), "{msg}");
    }

    #[test]
    fn h626_6_1_9_sms_segments_gsm7_and_ucs2() {
        let c = sms_cost(&"a".repeat(160));
        assert_eq!(
            (c.encoding, c.units, c.segments),
            (SmsEncoding::Gsm7, 160, 1)
        );
        assert_eq!(sms_cost(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_cost(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_cost(&"a".repeat(307)).segments, 3);
        // Extension characters count two septets.
        let c = sms_cost(&"€".repeat(80));
        assert_eq!(
            (c.encoding, c.units, c.segments),
            (SmsEncoding::Gsm7, 160, 1)
        );
        assert_eq!(sms_cost(&"€".repeat(81)).segments, 2);
        let c = sms_cost(&"摄".repeat(70));
        assert_eq!(
            (c.encoding, c.units, c.segments),
            (SmsEncoding::Ucs2, 70, 1)
        );
        assert_eq!(sms_cost(&"摄".repeat(71)).segments, 2);
        assert_eq!(sms_cost(&"摄".repeat(134)).segments, 2);
        assert_eq!(sms_cost(&"摄".repeat(135)).segments, 3);
        assert_eq!(sms_cost("").segments, 0);
    }

    #[test]
    fn h626_6_1_9_time_in_the_users_zone() {
        // 2026-12-07 03:04 UTC.
        let at = 1_796_612_640_000;
        assert_eq!(format_time(at, 0), "2026-12-07 03:04 UTC+00:00");
        assert_eq!(format_time(at, 60), "2026-12-07 04:04 UTC+01:00");
        assert_eq!(format_time(at, -300), "2026-12-06 22:04 UTC-05:00");
        assert_eq!(format_time(0, 0), "1970-01-01 00:00 UTC+00:00");
    }

    #[test]
    fn h626_6_1_9_defaults_parse_for_every_kind() {
        for k in AlarmKind::ALL {
            for lang in ["en", "de-DE", "zh-CN"] {
                parse(default_template(k, lang)).unwrap();
            }
        }
    }

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            "[ -~äöü€摄{}]{1,12}".prop_map(Part::Text),
            proptest::sample::select(Placeholder::ALL.to_vec()).prop_map(Part::Value),
        ]
    }

    proptest! {
        #[test]
        fn h626_6_1_9_template_source_round_trip(parts in proptest::collection::vec(part(), 1..12)) {
            // Adjacent literals merge when parsed back; compare after the same merge.
            let mut merged: Vec<Part> = Vec::new();
            for p in parts {
                match (merged.last_mut(), p) {
                    (Some(Part::Text(a)), Part::Text(b)) => a.push_str(&b),
                    (_, p) => merged.push(p),
                }
            }
            let t = Template { parts: merged };
            let src = t.source();
            prop_assume!(src.chars().count() <= MAX_TEMPLATE_CHARS && !src.trim().is_empty());
            prop_assert_eq!(parse(&src).unwrap(), t);
        }

        #[test]
        fn h626_6_1_9_parse_never_panics_and_render_is_bounded(s in "\\PC{0,400}") {
            if let Ok(t) = parse(&s) {
                let v = Values { camera: "c".repeat(500), ..Values::default() };
                prop_assert!(t.render(&v).chars().count() <= MAX_MESSAGE_CHARS);
            }
            let c = sms_cost(&s);
            prop_assert!(c.segments <= c.units);
        }
    }
}

//! Cm bodies of accounting and charging (H.626.4 clause 7, a CMU function; 6.2 "IPC
//! subscription" and "advertising"): billing periods, usage per account, invoices with
//! their CSV form, statistics series and announcements.
//!
//! Money is always an integer number of minor currency units (cents), never a float.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The kinds of usage the CMU records, with their unit.
pub const USAGE_KINDS: &[(&str, &str)] = &[
    ("live_s_direct", "second"),
    ("live_s_punched", "second"),
    ("live_s_relay", "second"),
    ("relay_bytes", "byte"),
    ("cloud_kb_h", "kilobyte-hour"),
    ("sms", "message"),
    ("snapshots", "picture"),
];

/// Whether `kind` is one of [`USAGE_KINDS`].
pub fn is_usage_kind(kind: &str) -> bool {
    USAGE_KINDS.iter().any(|(k, _)| *k == kind)
}

/// A billing period: one calendar month, UTC, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// The year, 1970 to 9999.
    pub year: u16,
    /// The month, 1 to 12.
    pub month: u8,
}

/// Why a period or a day did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a period is YYYY-MM (a day YYYY-MM-DD) from 1970 to 9999")]
pub struct BadPeriod;

impl Period {
    /// Parses `YYYY-MM` exactly (four digits, a dash, two digits; 1970-01 to 9999-12).
    pub fn parse(s: &str) -> Result<Self, BadPeriod> {
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(BadPeriod);
        }
        let year = digits(&b[..4])?;
        let month = digits(&b[5..])?;
        let year = u16::try_from(year).map_err(|_| BadPeriod)?;
        let month = u8::try_from(month).map_err(|_| BadPeriod)?;
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(BadPeriod);
        }
        Ok(Self { year, month })
    }

    /// The period holding the UTC day `day` (days since 1970-01-01).
    pub fn of_day(day: u64) -> Self {
        let (y, m, _) = civil(day);
        Self { year: y, month: m }
    }

    /// The first day of the period and the first day after it, as days since 1970-01-01.
    pub fn days(self) -> (u64, u64) {
        let from = days_from_civil(self.year, self.month, 1);
        (from, days_from_civil_next(self))
    }

    /// The period after this one.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

fn digits(b: &[u8]) -> Result<u32, BadPeriod> {
    b.iter().try_fold(0u32, |n, c| {
        if c.is_ascii_digit() {
            Ok(n * 10 + u32::from(c - b'0'))
        } else {
            Err(BadPeriod)
        }
    })
}

fn days_from_civil_next(p: Period) -> u64 {
    let n = p.next();
    days_from_civil(n.year, n.month, 1)
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (year >= 1970).
pub fn days_from_civil(year: u16, month: u8, day: u8) -> u64 {
    // The usual era computation, with March as the first month of the year.
    let (m, d) = (u64::from(month), u64::from(day));
    let y = u64::from(year) - u64::from(m <= 2);
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day since 1970-01-01.
pub fn civil(days: u64) -> (u16, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (
        u16::try_from(y).unwrap_or(u16::MAX),
        u8::try_from(m).unwrap_or(0),
        u8::try_from(d).unwrap_or(0),
    )
}

/// Parses a day `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_day(s: &str) -> Result<u64, BadPeriod> {
    let (p, d) = s.split_at_checked(7).ok_or(BadPeriod)?;
    let p = Period::parse(p)?;
    let d = d.strip_prefix('-').ok_or(BadPeriod)?;
    if d.len() != 2 {
        return Err(BadPeriod);
    }
    let d = digits(d.as_bytes())?;
    let (from, to) = p.days();
    let day = from + u64::from(d) - 1;
    if d == 0 || day >= to {
        return Err(BadPeriod);
    }
    Ok(day)
}

/// `YYYY-MM-DD` of a day since 1970-01-01.
pub fn format_day(day: u64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, quotes
/// doubled; a field starting with `=`, `+`, `-` or `@` that is not a number is prefixed
/// with `'` so that a spreadsheet does not run it as a formula.
pub fn csv_field(s: &str) -> String {
    let numeric = !s.is_empty() && s.parse::<i128>().is_ok();
    let s = if !numeric && s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One CSV line of `fields`, ended by CRLF.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// Why CSV text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CSV: {0}")]
pub struct BadCsv(pub &'static str);

/// Parses CSV text (RFC 4180, CRLF or LF line ends) into records of fields; the reader of
/// [`csv_line`]'s output (the CLI and the tests read reports with it).
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, BadCsv> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',' | '\r' | '\n')) {
                        return Err(BadCsv("text after a closing quote"));
                    }
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                any = true;
            }
            '"' => return Err(BadCsv("a quote inside an unquoted field")),
            ',' => {
                row.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err(BadCsv("an unclosed quote"));
    }
    if any || !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// What a plan includes of one usage kind per period and what more costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct KindPrice {
    /// Included per period, in the kind's unit.
    #[serde(default)]
    pub included: u64,
    /// Units per charged block beyond the included amount (a started block is charged
    /// whole); 0 means usage beyond the included amount is free.
    #[serde(default)]
    pub per: u64,
    /// Price of one block, minor currency units.
    #[serde(default)]
    pub minor: u64,
}

impl KindPrice {
    /// The charge for `used` units in one period, minor units (saturating).
    pub fn charge(&self, used: u64) -> u64 {
        let over = used.saturating_sub(self.included);
        if self.per == 0 || over == 0 {
            return 0;
        }
        over.div_ceil(self.per).saturating_mul(self.minor)
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InvoiceLine {
    /// `plan` for the plan's price, else a usage kind of [`USAGE_KINDS`].
    pub item: String,
    /// Units used in the period (1 for the plan).
    pub quantity: u64,
    /// Units included in the plan.
    pub included: u64,
    /// Amount, minor currency units.
    pub amount_minor: u64,
}

/// An invoice: one account, one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invoice {
    /// The period, `YYYY-MM`.
    pub period: String,
    /// The account billed.
    pub account: i64,
    /// Its login (a phone number for owners), when the account still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The plan billed (the one held at the end of the period, or now for an open one).
    pub plan: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The lines: the plan first, then one per usage kind used.
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines, minor units.
    pub total_minor: u64,
    /// Whether the period is closed (no more usage is added to it).
    pub closed: bool,
}

/// `GET /api/v1/admin/invoices?period=`: every account's invoice for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Invoices {
    /// The period.
    pub period: String,
    /// Whether it is closed.
    pub closed: bool,
    /// One invoice per account with usage or a priced plan.
    pub invoices: Vec<Invoice>,
}

/// The header of the invoices' CSV form.
pub const INVOICE_CSV_HEADER: &[&str] = &[
    "period",
    "account",
    "login",
    "plan",
    "currency",
    "item",
    "quantity",
    "included",
    "amount_minor",
];

/// The CSV form of invoices: one row per line of each invoice, then a `total` row.
pub fn invoices_csv(invoices: &[Invoice]) -> String {
    let mut out = csv_line(INVOICE_CSV_HEADER);
    for i in invoices {
        let head = |item: &str, q: String, inc: String, amount: u64| {
            csv_line(&[
                i.period.clone(),
                i.account.to_string(),
                i.login.clone().unwrap_or_default(),
                i.plan.clone(),
                i.currency.clone(),
                item.to_owned(),
                q,
                inc,
                amount.to_string(),
            ])
        };
        for l in &i.lines {
            out.push_str(&head(
                &l.item,
                l.quantity.to_string(),
                l.included.to_string(),
                l.amount_minor,
            ));
        }
        out.push_str(&head("total", String::new(), String::new(), i.total_minor));
    }
    out
}

/// An owner's usage in a period (`GET /api/v1/me/usage`, the portal's usage card).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageView {
    /// The period.
    pub period: String,
    /// The account.
    pub account: i64,
    /// Used per kind (kinds without usage are absent).
    pub used: BTreeMap<String, u64>,
    /// The invoice so far.
    pub invoice: Invoice,
}

/// `GET /api/v1/admin/stats`: series of the operator's charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StatsView {
    /// Start, Unix seconds.
    pub from: u64,
    /// End (excluded), Unix seconds.
    pub to: u64,
    /// Bucket width, seconds.
    pub step: u64,
    /// Per series name, `[bucket start, value]` pairs: `devices_online`,
    /// `live_s_direct`/`live_s_punched`/`live_s_relay`, `relay_bytes`,
    /// `storage_bytes:<plan>`, `signups`, `alarms`, `sms` (sums per bucket; sampled
    /// gauges are the last sample of the bucket).
    pub series: BTreeMap<String, Vec<(u64, u64)>>,
}

/// An announcement (6.2 "advertising"): the operator's message shown in the user portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnnouncementView {
    /// Its id.
    pub id: i64,
    /// Title, at most 120 characters.
    pub title: String,
    /// Plain text, at most 2000 characters.
    pub body: String,
    /// Absent for every account, else a plan id: shown to the accounts holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Shown from, Unix seconds.
    pub starts_at: u64,
    /// Shown until (excluded), Unix seconds; absent: until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<u64>,
}

/// `POST` and `PUT /api/v1/admin/announcements`: an announcement's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AnnouncementBody {
    /// Title, 1 to 120 characters.
    pub title: String,
    /// Plain text, at most 2000 characters.
    pub body: String,
    /// A plan id to show it only to accounts holding that plan.
    #[serde(default)]
    pub audience: Option<String>,
    /// Shown from, Unix seconds; default now.
    #[serde(default)]
    pub starts_at: Option<u64>,
    /// Shown until, Unix seconds; default until deleted.
    #[serde(default)]
    pub ends_at: Option<u64>,
}

/// `POST /api/v1/admin/billing/close?period=`: the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CloseAnswer {
    /// The period.
    pub period: String,
    /// When it was closed, Unix seconds.
    pub closed_at: u64,
    /// Invoices handed to the billing webhook (none when no webhook is configured).
    pub invoices: usize,
    /// Whether a webhook delivery was started.
    pub webhook: bool,
}

/// One account's total of one usage kind over a period (`GET /api/v1/admin/usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsageTotal {
    /// The account (0: the platform itself, e.g. sign-up SMS).
    pub account: i64,
    /// A kind of [`USAGE_KINDS`].
    pub kind: String,
    /// The sum, in the kind's unit.
    pub quantity: u64,
    /// How many usage records.
    pub records: u64,
}

/// One attempt to deliver a closed period to the billing webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeliveryView {
    /// The period.
    pub period: String,
    /// When, Unix seconds.
    pub at: u64,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The HTTP status answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the billing system took it.
    pub ok: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn h626_7_accounting_periods_and_days() {
        let p = Period::parse("2024-02").unwrap();
        let (from, to) = p.days();
        assert_eq!(to - from, 29, "a leap February");
        assert_eq!(format_day(from), "2024-02-01");
        assert_eq!(parse_day("2024-02-29"), Ok(to - 1));
        assert!(parse_day("2024-02-30").is_err());
        assert_eq!(
            Period::parse("2024-12").unwrap().next().to_string(),
            "2025-01"
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for bad in [
            "2024-13",
            "2024-00",
            "1969-12",
            "2024-1",
            "2024/01",
            "+024-01",
            "２０２４-01",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn h626_7_accounting_prices_are_integers() {
        let p = KindPrice {
            included: 1000,
            per: 100,
            minor: 7,
        };
        assert_eq!(p.charge(999), 0);
        assert_eq!(p.charge(1000), 0);
        assert_eq!(p.charge(1001), 7, "a started block is charged whole");
        assert_eq!(p.charge(1200), 14);
        assert_eq!(KindPrice::default().charge(u64::MAX), 0);
        assert_eq!(
            KindPrice {
                included: 0,
                per: 1,
                minor: u64::MAX
            }
            .charge(2),
            u64::MAX
        );
    }

    #[test]
    fn h626_7_accounting_csv_escapes_formulas_and_quotes() {
        assert_eq!(csv_field("=1+2"), "'=1+2");
        assert_eq!(csv_field("-5"), "-5");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
        let rows = parse_csv("a,b\r\n\"x,\"\"y\"\"\",\r\n").unwrap();
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x,\"y\"", ""]]);
        assert!(parse_csv("\"open").is_err());
        assert!(parse_csv("a\"b").is_err());
    }

    proptest! {
        #[test]
        fn h626_7_accounting_period_round_trip(y in 1970u16..=9999, m in 1u8..=12) {
            let p = Period { year: y, month: m };
            prop_assert_eq!(Period::parse(&p.to_string()), Ok(p));
            let (from, to) = p.days();
            prop_assert!((28..=31).contains(&(to - from)));
            prop_assert_eq!(Period::of_day(from), p);
            prop_assert_eq!(Period::of_day(to - 1), p);
            prop_assert_eq!(parse_day(&format_day(from)), Ok(from));
        }

        #[test]
        fn h626_7_accounting_csv_round_trip(rows in proptest::collection::vec(
            proptest::collection::vec("[a-z0-9,\" \r\n]{0,8}", 1..5), 0..6)) {
            let text: String = rows.iter().map(|r| csv_line(r)).collect();
            let back = parse_csv(&text).unwrap();
            // A single empty field on a line reads back as an empty line: one field.
            prop_assert_eq!(back, rows);
        }

        #[test]
        fn h626_7_accounting_parsers_never_panic(s in "\\PC{0,40}") {
            let _ = Period::parse(&s);
            let _ = parse_day(&s);
            let _ = parse_csv(&s);
        }
    }
}

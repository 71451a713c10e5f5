//! Cm bodies of the operator's equipment management (H.626.4 6.1.1: "after the operator
//! approves the service, a specified camera is assigned to the account"; 6.2 vendor
//! management): the device search, the vendor and model catalogue, assignment, moves and
//! decommissioning, and the CSV import of provisioned devices with its row parser.
//!
//! The CSV dialect is RFC 4180: comma separated, fields optionally in double quotes (a
//! quote inside is doubled), lines ending in CRLF or LF. The first line names the columns
//! ([`IMPORT_COLUMNS`], any order; `kind`, `name` and `account` may be left out).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::cm::AdminDeviceView;
use crate::ps::DeviceKind;

/// `GET /api/v1/admin/devices` with any search parameter: one page of the device list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AdminDevicePage {
    /// The devices of this page, by id.
    pub devices: Vec<AdminDeviceView>,
    /// How many devices match the filters (every page together), exact up to a cap (10,000
    /// in the CMU); past it, the cap, with `total_capped`.
    pub total: u64,
    /// More devices match than `total` says ("10000+"); counting them all would read every
    /// row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub total_capped: bool,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A vendor of the catalogue (6.2 vendor management).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VendorView {
    /// Its id.
    pub id: i64,
    /// Its name, as devices carry it (`vendor`).
    pub name: String,
    /// How to reach the vendor (support address, web site), free text.
    #[serde(default)]
    pub contact: String,
    /// Models of the catalogue by this vendor.
    pub models: u64,
}

/// `POST /api/v1/admin/vendors`, `PUT /api/v1/admin/vendors/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct VendorRequest {
    /// 1 to 64 bytes, unique.
    pub name: String,
    /// At most 200 bytes.
    #[serde(default)]
    pub contact: String,
}

/// A model of the catalogue with what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ModelView {
    /// Its id.
    pub id: i64,
    /// Its vendor's name.
    pub vendor: String,
    /// Its name, as devices carry it (`model`), unique per vendor.
    pub name: String,
    /// What kind of device it is.
    pub kind: DeviceKind,
    /// Pan, tilt and zoom (8.5).
    pub ptz: bool,
    /// Microphone and speaker (6.1.8).
    pub audio: bool,
    /// An SD card slot for local recording (8.7.3).
    pub sd: bool,
    /// Provisioned devices of this model.
    pub devices: u64,
}

/// `POST /api/v1/admin/models`, `PUT /api/v1/admin/models/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ModelRequest {
    /// The vendor's name (it must be in the catalogue).
    pub vendor: String,
    /// 1 to 64 bytes, unique per vendor.
    pub name: String,
    /// Default `pu`.
    #[serde(default = "default_kind")]
    pub kind: DeviceKind,
    /// Pan, tilt and zoom.
    #[serde(default)]
    pub ptz: bool,
    /// Microphone and speaker.
    #[serde(default)]
    pub audio: bool,
    /// SD card slot.
    #[serde(default)]
    pub sd: bool,
}

fn default_kind() -> DeviceKind {
    DeviceKind::Pu
}

/// `POST /api/v1/admin/devices/{id}/assign` and `.../move`: the account, by id or phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AssignRequest {
    /// The owner account: its id or its phone number (`+15550190346`).
    pub account: String,
    /// The device's name in the owner's list (default: keep it, or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What happens to a decommissioned camera's recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum RecordingsPolicy {
    /// Left where they are (its NVRs and SD card keep them until their own retention).
    Keep,
    /// Its NVRs and its SD card are told to delete them.
    Delete,
}

impl RecordingsPolicy {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Delete => "delete",
        }
    }
}

/// `POST /api/v1/admin/devices/{id}/decommission`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DecommissionRequest {
    /// `keep` or `delete` (no default: the operator chooses).
    pub recordings: RecordingsPolicy,
}

/// The answer to a decommission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DecommissionResult {
    /// The device.
    pub id: String,
    /// The policy applied.
    pub recordings: RecordingsPolicy,
    /// Recorders (its NVRs, its own SD card) told to delete its recordings.
    pub recorders_told: u32,
    /// Recorders that could not be told (offline); their recordings stay.
    pub recorders_unreachable: u32,
    /// The device was online and its session was ended.
    pub disconnected: bool,
}

/// `POST /api/v1/admin/devices/import`: what was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImportResult {
    /// Rows read.
    pub rows: usize,
    /// Devices newly provisioned.
    pub created: usize,
    /// Devices already provisioned with the same key (an import may be repeated).
    pub unchanged: usize,
    /// Devices assigned to the account of their row.
    pub assigned: usize,
}

/// The columns of an import, in the order [`write_import`] writes them.
pub const IMPORT_COLUMNS: [&str; 8] = [
    "device_id",
    "kind",
    "public_key",
    "bind_code_sha256",
    "vendor",
    "model",
    "name",
    "account",
];

/// Columns an import must have.
const REQUIRED: [&str; 5] = [
    "device_id",
    "public_key",
    "bind_code_sha256",
    "vendor",
    "model",
];

/// At most this many rows per import.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// One row of an import as read (checked for form, not yet against the platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Its line in the file (the header is line 1).
    pub line: usize,
    /// Device id (`pc-...`, lower case).
    pub device_id: String,
    /// What kind of device (default `pu`).
    pub kind: DeviceKind,
    /// Ed25519 public key, base64url (as single provisioning records it).
    pub public_key: String,
    /// SHA-256 of the bind code, 64 hex digits.
    pub bind_code_sha256: String,
    /// Vendor name.
    pub vendor: String,
    /// Model name.
    pub model: String,
    /// The name shown in the owner's list, if any.
    pub name: Option<String>,
    /// The account to assign the device to (id or phone), if any.
    pub account: Option<String>,
}

/// What is wrong with one row (or the header, line 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RowError {
    /// The line in the file (1 is the header).
    pub line: usize,
    /// The column (empty when the whole line is wrong).
    pub column: String,
    /// What is wrong and what is expected.
    pub reason: String,
}

impl RowError {
    /// An error of `column` on `line`.
    pub fn new(line: usize, column: &str, reason: impl Into<String>) -> Self {
        Self {
            line,
            column: column.to_owned(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.column.is_empty() {
            write!(f, "line {}: {}", self.line, self.reason)
        } else {
            write!(f, "line {}, {}: {}", self.line, self.column, self.reason)
        }
    }
}

/// Splits CSV text into records, each with the line it starts on. Blank lines are skipped.
/// An unterminated quote is an error of the line it starts on.
pub fn parse_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, RowError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let (mut fields, mut field) = (Vec::new(), String::new());
    let (mut line, mut start, mut quoted, mut was_quoted) = (1usize, 1usize, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => {
                return Err(RowError::new(
                    line,
                    "",
                    "a quote inside an unquoted field (quote the whole field and double the quote)",
                ));
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                let blank = fields.len() == 1 && fields[0].is_empty() && !was_quoted;
                was_quoted = false;
                let rec = std::mem::take(&mut fields);
                if !blank {
                    out.push((start, rec));
                }
                line += 1;
                start = line;
            }
            _ if was_quoted => {
                return Err(RowError::new(
                    line,
                    "",
                    "text after a closing quote (a field is quoted whole)",
                ));
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(RowError::new(start, "", "a quote is never closed"));
    }
    if !field.is_empty() || !fields.is_empty() || was_quoted {
        fields.push(field);
        out.push((start, fields));
    }
    Ok(out)
}

/// One field for CSV: quoted when it holds a comma, quote, CR or LF, or would be taken for
/// a blank line.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) || s.starts_with('\u{feff}') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One CSV line (LF-terminated). A record of one empty field is written `""` so that it
/// is not read back as a blank line.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = if fields.len() == 1 && fields[0].as_ref().is_empty() {
        "\"\"".to_owned()
    } else {
        fields
            .iter()
            .map(|f| csv_field(f.as_ref()))
            .collect::<Vec<_>>()
            .join(",")
    };
    line.push('\n');
    line
}

fn parse_kind(s: &str) -> Option<DeviceKind> {
    Some(match s.to_ascii_lowercase().as_str() {
        "" | "pu" => DeviceKind::Pu,
        "nvr" => DeviceKind::Nvr,
        "mtu" => DeviceKind::Mtu,
        "cs" => DeviceKind::Cs,
        _ => return None,
    })
}

/// Reads an import: every row is checked for form (device id, kind, key, digest, lengths,
/// repeated ids); all the errors are returned, or every row. Nothing is half-read.
pub fn parse_import(text: &str) -> Result<Vec<ImportRow>, Vec<RowError>> {
    let records = parse_records(text).map_err(|e| vec![e])?;
    let mut it = records.into_iter();
    let Some((_, header)) = it.next() else {
        return Err(vec![RowError::new(
            1,
            "",
            format!(
                "empty file; the first line names the columns: {}",
                IMPORT_COLUMNS.join(",")
            ),
        )]);
    };
    let mut errors = Vec::new();
    let mut index = [None; IMPORT_COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        match IMPORT_COLUMNS.iter().position(|c| *c == name) {
            Some(k) if index[k].is_some() => {
                errors.push(RowError::new(1, &name, "column named twice"));
            }
            Some(k) => index[k] = Some(i),
            None => errors.push(RowError::new(
                1,
                &name,
                format!("unknown column; known: {}", IMPORT_COLUMNS.join(",")),
            )),
        }
    }
    for r in REQUIRED {
        let k = IMPORT_COLUMNS.iter().position(|c| *c == r).unwrap_or(0);
        if index[k].is_none() {
            errors.push(RowError::new(1, r, "required column missing"));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (n, (line, rec)) in it.enumerate() {
        if n >= MAX_IMPORT_ROWS {
            errors.push(RowError::new(
                line,
                "",
                format!("at most {MAX_IMPORT_ROWS} rows per import"),
            ));
            break;
        }
        if rec.len() != header.len() {
            errors.push(RowError::new(
                line,
                "",
                format!("{} fields, the header has {}", rec.len(), header.len()),
            ));
            continue;
        }
        let get = |col: usize| index[col].map_or("", |i| rec[i].trim());
        match check_row(line, &get) {
            Ok(row) => {
                if let Some(first) = seen.insert(row.device_id.clone(), line) {
                    errors.push(RowError::new(
                        line,
                        "device_id",
                        format!("the same device id as line {first}"),
                    ));
                }
                rows.push(row);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// Checks one row's fields (columns by their index in [`IMPORT_COLUMNS`]).
fn check_row<'a>(line: usize, get: &dyn Fn(usize) -> &'a str) -> Result<ImportRow, Vec<RowError>> {
    let mut errors = Vec::new();
    let device_id = match get(0).parse::<peercam_base::DeviceId>() {
        Ok(id) => id.to_string(),
        Err(e) => {
            errors.push(RowError::new(line, "device_id", e.to_string()));
            String::new()
        }
    };
    let kind = parse_kind(get(1)).unwrap_or_else(|| {
        errors.push(RowError::new(line, "kind", "one of pu, nvr, mtu, cs"));
        DeviceKind::Pu
    });
    let public_key = get(2).to_owned();
    if let Err(e) = crate::register::parse_public_key(&public_key) {
        errors.push(RowError::new(line, "public_key", e.to_string()));
    }
    let digest = get(3).to_ascii_lowercase();
    if digest.len() != 64 || !digest.bytes().all(|c| c.is_ascii_hexdigit()) {
        errors.push(RowError::new(line, "bind_code_sha256", "64 hex digits"));
    }
    let mut text = |col: usize, max: usize, required: bool| {
        let v = get(col);
        let name = IMPORT_COLUMNS[col];
        if required && v.is_empty() {
            errors.push(RowError::new(line, name, "empty"));
        } else if v.len() > max {
            errors.push(RowError::new(line, name, format!("at most {max} bytes")));
        } else if v.chars().any(char::is_control) {
            errors.push(RowError::new(line, name, "control characters"));
        }
        v.to_owned()
    };
    let vendor = text(4, 64, true);
    let model = text(5, 64, true);
    let name = text(6, 64, false);
    let account = text(7, 64, false);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ImportRow {
        line,
        device_id,
        kind,
        public_key,
        bind_code_sha256: digest,
        vendor,
        model,
        name: (!name.is_empty()).then_some(name),
        account: (!account.is_empty()).then_some(account),
    })
}

/// Writes rows as an import (header and one line per row), which [`parse_import`] reads
/// back as the same rows.
pub fn write_import(rows: &[ImportRow]) -> String {
    let mut out = csv_line(&IMPORT_COLUMNS);
    for r in rows {
        out.push_str(&csv_line(&[
            r.device_id.as_str(),
            r.kind.as_str(),
            &r.public_key,
            &r.bind_code_sha256,
            &r.vendor,
            &r.model,
            r.name.as_deref().unwrap_or(""),
            r.account.as_deref().unwrap_or(""),
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(n: u8) -> String {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
        crate::register::encode_public_key(&sk.verifying_key())
    }

    fn row(line: usize, n: u8) -> ImportRow {
        ImportRow {
            line,
            device_id: peercam_base::DeviceId::from_random([n; 10]).to_string(),
            kind: DeviceKind::Pu,
            public_key: key(n),
            bind_code_sha256: "ab".repeat(32),
            vendor: "Acme, Inc.".into(),
            model: "Dome \"X\"".into(),
            name: Some("front, door".into()),
            account: None,
        }
    }

    #[test]
    fn h626_6_2_import_names_every_bad_row() {
        let good = write_import(&[row(2, 1)]);
        let mut text = good.clone();
        text.push_str("pc-nope,pu,xyz,12,,m,,\n");
        text.push_str(&csv_line(&[
            row(0, 1).device_id.as_str(),
            "toaster",
            &key(1),
            &"cd".repeat(32),
            "v",
            "m",
            "",
            "",
        ]));
        let errs = parse_import(&text).unwrap_err();
        let got: Vec<_> = errs.iter().map(|e| (e.line, e.column.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, "device_id"),
                (3, "public_key"),
                (3, "bind_code_sha256"),
                (3, "vendor"),
                (4, "kind"),
            ]
        );
        // The second row repeats the first's id once its own errors are gone.
        let text = format!(
            "{good}{}",
            write_import(&[row(0, 1)]).lines().nth(1).unwrap()
        );
        let errs = parse_import(&text).unwrap_err();
        assert_eq!(errs[0].line, 3);
        assert!(errs[0].reason.contains("line 2"), "{}", errs[0]);
        assert_eq!(
            parse_import("device_id,model\n").unwrap_err().len(),
            3,
            "three required columns missing"
        );
        assert_eq!(parse_import("").unwrap_err()[0].line, 1);
        assert_eq!(
            parse_import("a,\"b\n").unwrap_err()[0].reason,
            "a quote is never closed"
        );
        assert!(parse_import("device_id,x\n").is_err());
    }

    #[test]
    fn h626_6_2_import_reads_crlf_bom_and_optional_columns() {
        let r = row(2, 3);
        let text = format!(
            "\u{feff}Model,Vendor,Device_ID,Public_Key,Bind_Code_SHA256\r\n{},{},{},{},{}\r\n\r\n",
            "m", "v", r.device_id, r.public_key, r.bind_code_sha256
        );
        let rows = parse_import(&text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].line, rows[0].kind, rows[0].name.as_deref()),
            (2, DeviceKind::Pu, None)
        );
    }

    fn text_field() -> impl Strategy<Value = String> {
        prop::string::string_regex("[a-zA-Z0-9 ,\"+.-]{0,20}")
            .unwrap()
            .prop_map(|s| s.trim().to_owned())
    }

    fn any_row() -> impl Strategy<Value = ImportRow> {
        (
            any::<[u8; 10]>(),
            any::<u8>(),
            prop::sample::select(vec![
                DeviceKind::Pu,
                DeviceKind::Nvr,
                DeviceKind::Mtu,
                DeviceKind::Cs,
            ]),
            "[0-9a-f]{64}",
            text_field().prop_filter("vendor is required", |s| !s.is_empty()),
            text_field().prop_filter("model is required", |s| !s.is_empty()),
            prop::option::of(text_field().prop_filter("empty is none", |s| !s.is_empty())),
            prop::option::of("[0-9]{1,6}|\\+1555[0-9]{7}"),
        )
            .prop_map(
                |(id, k, kind, digest, vendor, model, name, account)| ImportRow {
                    line: 0,
                    device_id: peercam_base::DeviceId::from_random(id).to_string(),
                    kind,
                    public_key: key(k),
                    bind_code_sha256: digest,
                    vendor,
                    model,
                    name,
                    account,
                },
            )
    }

    proptest! {
        /// Rows written and read back are the same rows (on the lines they were written).
        #[test]
        fn h626_6_2_import_round_trip(rows in prop::collection::vec(any_row(), 0..8)) {
            let mut rows = rows;
            let mut seen = std::collections::HashSet::new();
            rows.retain(|r| seen.insert(r.device_id.clone()));
            let text = write_import(&rows);
            let back = parse_import(&text).unwrap();
            for (i, r) in rows.iter_mut().enumerate() {
                r.line = i + 2;
            }
            prop_assert_eq!(back, rows);
        }

        /// Any text splits into records or one error, never a panic; written records read
        /// back unchanged.
        #[test]
        fn h626_6_2_csv_records_round_trip(recs in prop::collection::vec(
            prop::collection::vec("[a-z,\"\r\n ]{0,6}", 1..4), 0..5)) {
            let text: String = recs.iter().map(|r| csv_line(r)).collect();
            let back: Vec<Vec<String>> =
                parse_records(&text).unwrap().into_iter().map(|(_, r)| r).collect();
            prop_assert_eq!(back, recs);
        }
    }

    #[test]
    fn h626_6_2_row_error_reads_well() {
        assert_eq!(
            RowError::new(3, "model", "empty").to_string(),
            "line 3, model: empty"
        );
    }
}

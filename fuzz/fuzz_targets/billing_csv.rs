//! The accounting's parsers of `peercam-signal` (H.626.4 clause 7): billing periods
//! (`YYYY-MM`), days (`YYYY-MM-DD`) and the CSV reader of the reports and invoices.
//!
//! Nothing panics; a period or day that parses formats back to the same text; CSV that
//! parses writes back to text that parses to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::cm_billing::{Period, csv_line, format_day, parse_csv, parse_day};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(p) = Period::parse(&text) {
        assert_eq!(p.to_string(), text);
        let (from, to) = p.days();
        assert!(from < to);
    }
    if let Ok(d) = parse_day(&text) {
        assert_eq!(format_day(d), text);
    }
    if let Ok(rows) = parse_csv(&text) {
        // Fields that a spreadsheet would run as formulas are written with a quote mark.
        if rows
            .iter()
            .flatten()
            .all(|f| !f.starts_with(['=', '+', '-', '@']))
        {
            let again: String = rows.iter().map(|r| csv_line(r)).collect();
            assert_eq!(parse_csv(&again).ok(), Some(rows));
        }
    }
});

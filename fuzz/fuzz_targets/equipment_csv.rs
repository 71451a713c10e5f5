//! The operator's CSV import (`peercam_signal::cm_equipment`, H.626.4 6.1.1, 6.2) on
//! arbitrary text: reading never panics; a file that reads as rows is written back and read
//! again as the same rows (one meaning per file); every error names a line in the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signal::cm_equipment::{parse_import, parse_records, write_import};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.matches('\n').count() + 1;
    if let Ok(records) = parse_records(&text) {
        for (line, _) in &records {
            assert!(*line >= 1 && *line <= lines);
        }
    }
    match parse_import(&text) {
        Ok(rows) => {
            let again = parse_import(&write_import(&rows)).expect("written rows read back");
            assert_eq!(again.len(), rows.len());
            for (a, b) in again.iter().zip(&rows) {
                assert_eq!(
                    (&a.device_id, a.kind, &a.public_key, &a.bind_code_sha256),
                    (&b.device_id, b.kind, &b.public_key, &b.bind_code_sha256)
                );
                assert_eq!((&a.vendor, &a.model, &a.name, &a.account), (&b.vendor, &b.model, &b.name, &b.account));
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.line >= 1 && e.line <= lines, "{e}");
            }
        }
    }
});

//! Clause 7 accounting: the monthly report over many usage records (issue 18 acceptance:
//! 10 million, SQLite). Loads the records in one statement, builds the daily rollups, then
//! times the report (from the rollups) and, for comparison, the same totals summed from the
//! records. Figures and the command are in docs/benchmarks.md.
//!
//! `cargo bench -p peercam-cmu --bench monthly_report -- [RECORDS] [ACCOUNTS]`
//! (default 10000000 records over 10000 accounts).
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use peercam_signal::cm_billing::Period;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let records: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let accounts: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = peercam_cmu::accounting::bench::open(&url).await.unwrap();
    let period = Period::parse("2026-11").unwrap();
    let (load, rollup) = db.seed(records, accounts, period).await.unwrap();
    println!(
        "loaded {records} usage records over {accounts} accounts in {load:.2?}; daily rollups built in {rollup:.2?}"
    );
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..5 {
        let (csv, t) = db.monthly(period).await.unwrap();
        rows = csv.lines().count() - 1;
        times.push(t);
    }
    times.sort();
    println!(
        "monthly report from the rollups: {rows} rows; best {:.2?}, median {:.2?} of 5",
        times[0], times[2]
    );
    let (n, t) = db.from_records(period).await.unwrap();
    assert_eq!(n, rows, "the rollups and the records agree on the rows");
    println!("the same totals summed from the records: {n} rows in {t:.2?}");
}

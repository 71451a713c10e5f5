//! `peercam admin usage|invoices|reports|announcements` (H.626.4 clause 7 accounting and
//! charging; 6.2 statistics, reports and advertising).

use std::path::PathBuf;

use clap::Subcommand;
use peercam_cu::Client;
use peercam_signal::cm_billing::AnnouncementBody;

use super::cu::print;

/// Which report.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Report {
    /// One day (`--period YYYY-MM-DD`, default yesterday).
    Daily,
    /// One month (`--period YYYY-MM`, default this month).
    Monthly,
}

#[derive(Subcommand)]
pub(crate) enum AnnCmd {
    /// List every announcement.
    List,
    /// Publish an announcement shown in the user portal.
    Add {
        /// Title, 1 to 120 characters.
        title: String,
        /// Text, at most 2000 characters.
        body: String,
        /// Show it only to accounts on this plan.
        #[arg(long)]
        plan: Option<String>,
        /// Shown from (Unix seconds); default now.
        #[arg(long)]
        from: Option<u64>,
        /// Shown until (Unix seconds); default until deleted.
        #[arg(long)]
        until: Option<u64>,
    },
    /// Delete an announcement.
    Delete { id: i64 },
}

/// `peercam admin usage`: totals per account and kind.
pub(crate) async fn usage(c: &Client, json: bool, period: Option<&str>) -> anyhow::Result<()> {
    let l = c.admin_usage(period).await?;
    print(json, &l, |l| {
        if l.is_empty() {
            println!("no usage");
        }
        for t in l {
            println!(
                "account {:<8} {:<16} {:>16}  ({} records)",
                t.account, t.kind, t.quantity, t.records
            );
        }
    })
}

/// `peercam admin invoices`: the invoices of a period, as a table, JSON or CSV; or close it.
pub(crate) async fn invoices(
    c: &Client,
    json: bool,
    period: Option<&str>,
    (csv, close): (bool, bool),
) -> anyhow::Result<()> {
    if close {
        let p = period.ok_or_else(|| anyhow::anyhow!("--close needs --period YYYY-MM"))?;
        let a = c.admin_close_period(p).await?;
        let d = c.admin_deliveries(p).await?;
        return print(json, &(a, d), |(a, d)| {
            println!(
                "{} closed at {}: {} invoices{}",
                a.period,
                a.closed_at,
                a.invoices,
                if a.webhook {
                    ", delivery to the billing webhook started"
                } else {
                    ""
                }
            );
            for x in d {
                println!(
                    "  attempt {} at {}: {}",
                    x.attempt,
                    x.at,
                    if x.ok { "delivered" } else { "failed" }
                );
            }
        });
    }
    if csv {
        print!("{}", c.admin_invoices_csv(period).await?);
        return Ok(());
    }
    let inv = c.admin_invoices(period).await?;
    print(json, &inv, |inv| {
        println!(
            "{} ({})",
            inv.period,
            if inv.closed { "closed" } else { "open" }
        );
        for i in &inv.invoices {
            println!(
                "account {:<8} {:<16} plan {:<10} {} {}.{:02}",
                i.account,
                i.login.as_deref().unwrap_or("-"),
                i.plan,
                i.currency,
                i.total_minor / 100,
                i.total_minor % 100
            );
        }
    })
}

/// `peercam admin reports`: a CSV report to a file or standard output.
pub(crate) async fn report(
    c: &Client,
    json: bool,
    which: Report,
    period: Option<&str>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let name = match which {
        Report::Daily => "daily",
        Report::Monthly => "monthly",
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("building the {name} report"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let text = c.admin_report_csv(name, period).await;
    bar.finish_and_clear();
    let text = text?;
    if json {
        let rows = peercam_signal::cm_billing::parse_csv(&text)?;
        return print(true, &rows, |_| {});
    }
    match out {
        Some(p) => {
            std::fs::write(&p, &text)?;
            eprintln!(
                "{} rows written to {}",
                text.lines().count().saturating_sub(1),
                p.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `peercam admin announcements ...` (6.2 advertising).
pub(crate) async fn announcements(c: &Client, json: bool, cmd: AnnCmd) -> anyhow::Result<()> {
    let line = |a: &peercam_signal::cm_billing::AnnouncementView| {
        println!(
            "{:<6} {:<30} plan {:<10} {}..{}  {}",
            a.id,
            a.title,
            a.audience.as_deref().unwrap_or("all"),
            a.starts_at,
            a.ends_at.map_or_else(|| "-".into(), |e| e.to_string()),
            a.body
        );
    };
    match cmd {
        AnnCmd::List => {
            let l = c.admin_announcements().await?;
            print(json, &l, |l| l.iter().for_each(line))
        }
        AnnCmd::Add {
            title,
            body,
            plan,
            from,
            until,
        } => {
            let a = c
                .admin_announce(&AnnouncementBody {
                    title,
                    body,
                    audience: plan,
                    starts_at: from,
                    ends_at: until,
                })
                .await?;
            print(json, &a, line)
        }
        AnnCmd::Delete { id } => {
            c.admin_unannounce(id).await?;
            print(json, &serde_json::json!({"deleted": id}), |_| {
                println!("announcement {id} deleted");
            })
        }
    }
}

//! `peercam cu rec cloud`: the account's cloud storage plan and usage (H.626.4 6.1.13).

use clap::Subcommand;
use peercam_record::time::format_rfc3339;
use peercam_signal::cm_plan::{PlanState, PlanView};

use super::cu::print;

/// Cloud storage plan commands.
#[derive(Subcommand)]
pub(crate) enum CloudCmd {
    /// The plans you may choose.
    Plans,
    /// Your plan and how much of it your cameras use.
    Usage,
    /// Choose a plan (owners); it applies at once.
    Plan {
        /// The plan's id (see `plans`).
        plan: String,
    },
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}

fn plan_line(p: &PlanView) -> String {
    format!(
        "{:<12} {:<20} {:>12}  {:<14} {}",
        p.id,
        p.name,
        mib(p.quota_bytes),
        p.max_age_days
            .map_or_else(|| "kept".to_owned(), |d| format!("{d} days")),
        p.price.as_deref().unwrap_or("free")
    )
}

fn show(s: &PlanState) {
    println!("plan: {}", plan_line(&s.plan));
    if let Some(t) = s.since {
        println!("since: {}", format_rfc3339(t * 1000));
    }
    println!(
        "used: {} of {} ({} objects on {} storage unit(s){})",
        mib(s.usage.used_bytes),
        mib(s.plan.quota_bytes),
        s.usage.objects,
        s.usage.units,
        if s.usage.unreachable > 0 {
            format!(", {} unreachable", s.usage.unreachable)
        } else {
            String::new()
        }
    );
    if let Some(t) = s.prune_excess_after {
        println!(
            "bytes beyond the quota are deleted, oldest first, from {}",
            format_rfc3339(t * 1000)
        );
    }
}

pub(crate) async fn run(c: &peercam_cu::Client, json: bool, cmd: CloudCmd) -> anyhow::Result<()> {
    match cmd {
        CloudCmd::Plans => {
            let all = c.plans().await?;
            print(json, &all, |all| {
                for p in all {
                    println!("{}", plan_line(p));
                }
            })?;
        }
        CloudCmd::Usage => print(json, &c.my_plan().await?, show)?,
        CloudCmd::Plan { plan } => print(json, &c.set_plan(&plan).await?, show)?,
    }
    Ok(())
}

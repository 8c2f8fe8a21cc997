//! The printed result: wall time of both sides, the ratio against the target, and
//! where Plexus's time goes.

use anyhow::Result;

use super::stats::{Metrics, Summary, ms, ratio};

/// Issue #3: Plexus ADD at most this fraction of the floor.
pub const ADD_TARGET: f64 = 0.6;

fn header(title: &str) {
    println!();
    println!(
        "{title:<58} {:>10} {:>10} {:>10} {:>10}",
        "median", "p99", "min", "max"
    );
}

fn line(label: &str, s: &Summary) {
    println!(
        "{label:<58} {:>10} {:>10} {:>10} {:>10}",
        ms(s.median),
        ms(s.p99),
        ms(s.min),
        ms(s.max)
    );
}

fn row(m: &Metrics, key: &str, label: &str) -> Result<()> {
    line(label, &m.summary(key)?);
    Ok(())
}

fn delegates(m: &Metrics, prefix: &str, indent: &str) -> Result<()> {
    for name in m.names_under(prefix) {
        row(m, &format!("{prefix}{name}"), &format!("{indent}{name}"))?;
    }
    Ok(())
}

pub fn print(m: &Metrics) -> Result<()> {
    header("process wall time per pod (measured by the bench)");
    row(m, "plexus ADD wall", "plexus ADD")?;
    row(m, "floor ADD wall", "floor ADD (bridge, macvlan, macvlan)")?;
    row(m, "plexus DEL wall", "plexus DEL")?;
    row(m, "floor DEL wall", "floor DEL (macvlan, macvlan, bridge)")?;
    header("CPU time per pod (user+sys of every plugin process)");
    row(m, "plexus ADD cpu", "plexus ADD")?;
    row(m, "floor ADD cpu", "floor ADD")?;
    row(m, "plexus DEL cpu", "plexus DEL")?;
    row(m, "floor DEL cpu", "floor DEL")?;

    println!();
    for verb in ["ADD", "DEL"] {
        let p = m.summary(&format!("plexus {verb} wall"))?;
        let f = m.summary(&format!("floor {verb} wall"))?;
        let r = ratio(p.median, f.median);
        let verdict = if verb == "ADD" {
            let budget = f.median.mul_f64(ADD_TARGET);
            if r <= ADD_TARGET {
                format!(
                    "target <= {ADD_TARGET}x: MET ({} under the budget of {})",
                    ms(budget.saturating_sub(p.median)),
                    ms(budget)
                )
            } else {
                format!(
                    "target <= {ADD_TARGET}x: NOT MET ({} over the budget of {})",
                    ms(p.median.saturating_sub(budget)),
                    ms(budget)
                )
            }
        } else {
            "(no target)".to_owned()
        };
        println!(
            "ratio plexus/floor {verb}: median {r:.2}x, p99 {:.2}x   {verdict}",
            ratio(p.p99, f.p99)
        );
    }

    header("plexus ADD split (its log, per pod)");
    row(m, "plexus ADD wall", "wall (bench)")?;
    row(
        m,
        "plexus ADD own process",
        "  process: exec, start, config, exit (wall - ADD done)",
    )?;
    row(
        m,
        "plexus ADD process start",
        "    exec to the ADD handler (loader, stdin, config, log)",
    )?;
    row(
        m,
        "plexus ADD process end",
        "    the handler's end to the exit (reply, teardown)",
    )?;
    row(m, "plexus ADD handler", "  ADD handler (ADD done)")?;
    row(
        m,
        "plexus ADD before first",
        "    before the first delegate: plan, lock, journal",
    )?;
    row(
        m,
        "plexus ADD own plan",
        "      of which plan built (NADs, annotations)",
    )?;
    row(
        m,
        "plexus ADD first",
        "    first delegate (the cluster network)",
    )?;
    row(
        m,
        "plexus ADD wait others",
        "    then waiting for the others",
    )?;
    row(
        m,
        "plexus ADD after",
        "    after the delegates: routes, network-status, event",
    )?;
    if m.has("plexus ADD own status") {
        row(
            m,
            "plexus ADD own status",
            "      of which network-status written",
        )?;
    }
    row(
        m,
        "plexus ADD delegates",
        "  every delegate's own time (sum of \"attached\"; overlapping)",
    )?;
    delegates(m, "plexus ADD delegate ", "    ")?;
    header("floor ADD split (bench, per plugin exec)");
    delegates(m, "floor ADD delegate ", "  ")?;

    header("plexus DEL split (its log, per pod)");
    row(m, "plexus DEL wall", "wall (bench)")?;
    if m.has("plexus DEL own process") {
        row(
            m,
            "plexus DEL own process",
            "  process: exec, start, config, exit (wall - DEL done)",
        )?;
        row(m, "plexus DEL handler", "  DEL handler (DEL done)")?;
    } else {
        println!(
            "  process vs handler: unavailable (plexus logs no DEL total; a \"DEL done duration_us=...\" line would give it)"
        );
    }
    row(
        m,
        "plexus DEL delegates",
        "  every delegate's own time (sum of \"detached\"; overlapping)",
    )?;
    delegates(m, "plexus DEL delegate ", "    ")?;
    header("floor DEL split (bench, per plugin exec)");
    delegates(m, "floor DEL delegate ", "  ")?;
    println!();
    println!(
        "medians of parts do not add up to the median of the whole; a delegate's time is what Plexus \
         logs around each attachment (exec of an external plugin, or the in-process built-in); \
         with overlapClusterNetwork (the default) some of them run at the same time."
    );
    Ok(())
}

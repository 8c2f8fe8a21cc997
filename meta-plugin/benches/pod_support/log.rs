//! Reading the timings Plexus logs for one call (`logLevel: verbose`, tracing's fmt layout):
//!
//! ```text
//! ... INFO plexus{cmd="ADD" ...}: plexus::cmd: plan built attachments=3 duration_us=183
//! ... INFO plexus{cmd="ADD" ...}: plexus::cmd: attached network=cbr0 ifname=eth0 delegate="bridge" duration_us=21808
//! ... INFO plexus{cmd="ADD" ...}: plexus::cmd: network-status written duration_us=475
//! ... INFO plexus{cmd="ADD" ...}: plexus::cmd: ADD done duration_us=29169
//! ... INFO plexus{cmd="DEL" ...}: plexus::cmd: detached network=default/backup ifname=net2 delegate="macvlan" duration_us=16329
//! ```

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One delegate's time: `<network> (<delegate>)` and the logged duration.
pub type DelegateTime = (String, Duration);

/// One attachment of an ADD on the handler's clock: when it started and ended, as offsets from
/// the start of the ADD handler (the log line's timestamp is its end, minus its duration its
/// start).
#[derive(Debug, Clone)]
pub struct Span {
    pub start: Duration,
    pub end: Duration,
}

/// What an ADD logged.
#[derive(Debug)]
pub struct AddLog {
    pub plan: Duration,
    pub attached: Vec<DelegateTime>,
    /// The attachments on the handler's clock, by start.
    pub spans: Vec<Span>,
    /// Absent when no status is written (no pod name).
    pub status: Option<Duration>,
    /// From entering the ADD handler to the reply being ready.
    pub done: Duration,
    /// When the ADD handler started: the wall clock's time of day (UTC).
    pub handler_started_at: Duration,
}

impl AddLog {
    /// The first attachment (the cluster network): the one that started first.
    pub fn first(&self) -> &Span {
        &self.spans[0]
    }

    /// When the last attachment ended.
    pub fn last_end(&self) -> Duration {
        self.spans.iter().map(|s| s.end).max().unwrap_or_default()
    }
}

/// What a DEL logged.
#[derive(Debug)]
pub struct DelLog {
    pub detached: Vec<DelegateTime>,
    /// Plexus's in-process DEL total (`DEL done duration_us=...`; absent in versions that do
    /// not log it).
    pub done: Option<Duration>,
}

/// A line's message and fields: what follows the span and the target.
fn message(line: &str) -> Option<&str> {
    let after_span = line.split_once("}: ").map_or(line, |(_, rest)| rest);
    after_span.split_once(": ").map(|(_, rest)| rest)
}

fn field<'a>(rest: &'a str, key: &str) -> Option<&'a str> {
    rest.split_whitespace()
        .find_map(|tok| tok.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

fn duration(rest: &str, line: &str) -> Result<Duration> {
    let v = field(rest, "duration_us").with_context(|| format!("no duration_us in {line:?}"))?;
    let us: u64 = v
        .parse()
        .with_context(|| format!("duration_us={v:?} in {line:?}"))?;
    Ok(Duration::from_micros(us))
}

/// The line's timestamp (tracing's `2026-11-24T05:41:18.924686Z`) as time since midnight.
fn timestamp(line: &str) -> Result<Duration> {
    let clock = line
        .split_whitespace()
        .next()
        .and_then(|t| t.split_once('T'))
        .map(|(_, c)| c.trim_end_matches('Z'))
        .with_context(|| format!("no timestamp in {line:?}"))?;
    let mut parts = clock.splitn(3, ':');
    let (Some(h), Some(m), Some(sec)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("timestamp {clock:?} in {line:?}");
    };
    let h: u64 = h.parse().with_context(|| format!("hour in {line:?}"))?;
    let m: u64 = m.parse().with_context(|| format!("minute in {line:?}"))?;
    let sec: f64 = sec.parse().with_context(|| format!("second in {line:?}"))?;
    Ok(Duration::from_secs(h * 3600 + m * 60) + Duration::from_secs_f64(sec))
}

fn delegate_time(rest: &str, line: &str) -> Result<DelegateTime> {
    let network = field(rest, "network").with_context(|| format!("no network in {line:?}"))?;
    let delegate = field(rest, "delegate").with_context(|| format!("no delegate in {line:?}"))?;
    Ok((format!("{network} ({delegate})"), duration(rest, line)?))
}

/// The timings of one ADD; an error when a line the split needs is missing.
pub fn parse_add(log: &str) -> Result<AddLog> {
    let (mut plan, mut status, mut done) = (None, None, None);
    let mut attached = Vec::new();
    // (end timestamp, duration) of each "attached" line
    let mut ends = Vec::new();
    for line in log.lines() {
        let Some(rest) = message(line) else { continue };
        if rest.starts_with("plan built ") {
            plan = Some(duration(rest, line)?);
        } else if rest.starts_with("attached ") {
            let (label, d) = delegate_time(rest, line)?;
            ends.push((timestamp(line)?, d));
            attached.push((label, d));
        } else if rest.starts_with("network-status written ") {
            status = Some(duration(rest, line)?);
        } else if rest.starts_with("ADD done ") {
            done = Some((timestamp(line)?, duration(rest, line)?));
        }
    }
    let (Some(plan), Some((done_at, done))) = (plan, done) else {
        bail!(
            "the plexus log of an ADD lacks \"plan built\" or \"ADD done\" (logLevel verbose or debug needed):\n{log}"
        );
    };
    if attached.is_empty() {
        bail!("the plexus log of an ADD has no \"attached\" line:\n{log}");
    }
    let handler_start = done_at.saturating_sub(done);
    let mut spans: Vec<Span> = ends
        .into_iter()
        .map(|(end, d)| {
            let end = end.saturating_sub(handler_start);
            Span {
                start: end.saturating_sub(d),
                end,
            }
        })
        .collect();
    spans.sort_by_key(|s| s.start);
    Ok(AddLog {
        plan,
        attached,
        spans,
        status,
        done,
        handler_started_at: handler_start,
    })
}

/// The timings of one DEL.
pub fn parse_del(log: &str) -> Result<DelLog> {
    let mut detached = Vec::new();
    let mut done = None;
    for line in log.lines() {
        let Some(rest) = message(line) else { continue };
        if rest.starts_with("detached ") {
            detached.push(delegate_time(rest, line)?);
        } else if rest.starts_with("DEL done ") {
            done = Some(duration(rest, line)?);
        }
    }
    if detached.is_empty() {
        bail!("the plexus log of a DEL has no \"detached\" line:\n{log}");
    }
    Ok(DelLog { detached, done })
}

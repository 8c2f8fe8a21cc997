//! Turning one measured cycle into the named series the report prints. Names are
//! `<side> <verb> <part>`; per-delegate series are `<side> <verb> delegate <network (type)>`.

use std::time::Duration;

use super::floor::{FloorCycle, FloorVerb};
use super::plexus_side::PlexusCycle;
use super::stats::Metrics;

pub fn plexus(m: &mut Metrics, c: &PlexusCycle) {
    let a = &c.add_log;
    let delegates: Duration = a.attached.iter().map(|(_, d)| *d).sum();
    m.push("plexus ADD wall", c.add.wall);
    m.push("plexus ADD cpu", c.add.cpu);
    m.push("plexus ADD delegates", delegates);
    for (label, d) in &a.attached {
        m.push(&format!("plexus ADD delegate {label}"), *d);
    }
    m.push("plexus ADD own process", c.add.wall.saturating_sub(a.done));
    // The process part, split on the wall clock the log shares with the bench: exec to the
    // ADD handler (loader, runtime start, stdin, config, logging), and the handler's end to
    // the exit (reply, teardown).
    let to_handler = a.handler_started_at.saturating_sub(c.add.spawned_at);
    m.push("plexus ADD process start", to_handler);
    m.push(
        "plexus ADD process end",
        c.add.wall.saturating_sub(to_handler + a.done),
    );
    m.push("plexus ADD handler", a.done);
    // The handler's critical path: up to the first delegate (the cluster network), the first
    // delegate, the wait for the attachments made meanwhile, the steps after the delegates.
    let first = a.first();
    m.push("plexus ADD before first", first.start);
    m.push("plexus ADD own plan", a.plan);
    m.push("plexus ADD first", first.end.saturating_sub(first.start));
    m.push(
        "plexus ADD wait others",
        a.last_end().saturating_sub(first.end),
    );
    m.push("plexus ADD after", a.done.saturating_sub(a.last_end()));
    if let Some(status) = a.status {
        m.push("plexus ADD own status", status);
    }

    let d = &c.del_log;
    let delegates: Duration = d.detached.iter().map(|(_, t)| *t).sum();
    m.push("plexus DEL wall", c.del.wall);
    m.push("plexus DEL cpu", c.del.cpu);
    m.push("plexus DEL delegates", delegates);
    for (label, t) in &d.detached {
        m.push(&format!("plexus DEL delegate {label}"), *t);
    }
    if let Some(done) = d.done {
        m.push("plexus DEL own process", c.del.wall.saturating_sub(done));
        m.push("plexus DEL handler", done);
    }
}

fn floor_verb(m: &mut Metrics, verb: &str, v: &FloorVerb) {
    m.push(&format!("floor {verb} wall"), v.wall);
    m.push(&format!("floor {verb} cpu"), v.cpu);
    for s in &v.steps {
        m.push(&format!("floor {verb} delegate {}", s.label), s.wall);
    }
}

pub fn floor(m: &mut Metrics, c: &FloorCycle) {
    floor_verb(m, "ADD", &c.add);
    floor_verb(m, "DEL", &c.del);
}

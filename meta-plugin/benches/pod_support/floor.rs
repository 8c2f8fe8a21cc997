//! The floor: the same pod networks made by executing the three reference plugins directly,
//! the least work any exec-based meta-plugin does. ADD runs `bridge` (eth0), then `macvlan`
//! (net1) and `macvlan` (net2), each of which execs `host-local`; DEL runs them in reverse.
//! Each plugin gets what libcni would give it: the config with `name` and `cniVersion`, and at
//! DEL its ADD result as `prevResult`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::exec;
use super::networks::{self, Networks};
use super::plexus_side::REF_DIR;
use super::sandbox::Sandbox;
use super::topology;

/// One plugin call of the floor: its label and what the bench measured.
pub struct Step {
    pub label: String,
    pub wall: Duration,
}

/// One verb of the floor: the whole sequence and each step.
pub struct FloorVerb {
    pub wall: Duration,
    pub cpu: Duration,
    pub steps: Vec<Step>,
}

pub struct FloorCycle {
    pub add: FloorVerb,
    pub del: FloorVerb,
}

struct Plugin {
    binary: PathBuf,
    ifname: &'static str,
    label: String,
    config: Value,
    /// The subnet its address must come from.
    subnet: usize,
}

pub struct FloorSide {
    pub nets: Networks,
    plugins: Vec<Plugin>,
}

fn named(mut config: Value, name: &str) -> Value {
    config["name"] = json!(name);
    config["cniVersion"] = json!(networks::CNI_VERSION);
    config
}

impl FloorSide {
    pub fn new(nets: Networks) -> FloorSide {
        let dir = Path::new(REF_DIR);
        let mut plugins = vec![Plugin {
            binary: dir.join("bridge"),
            ifname: "eth0",
            label: format!("{} (bridge)", networks::CLUSTER),
            config: named(nets.bridge_plugin(), networks::CLUSTER),
            subnet: 0,
        }];
        for (i, (nad, ifname)) in networks::NADS.iter().zip(["net1", "net2"]).enumerate() {
            plugins.push(Plugin {
                binary: dir.join("macvlan"),
                ifname,
                label: format!("{}/{nad} (macvlan)", networks::NAD_NAMESPACE),
                config: named(nets.macvlan_config(i), nad),
                subnet: i + 1,
            });
        }
        FloorSide { nets, plugins }
    }

    /// ADD then DEL of one sandbox through the reference plugins.
    pub fn cycle(&self, sb: &Sandbox) -> Result<FloorCycle> {
        let stdins: Vec<Vec<u8>> = self
            .plugins
            .iter()
            .map(|p| serde_json::to_vec(&p.config))
            .collect::<Result<_, _>>()?;
        let mut add = FloorVerb {
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            steps: Vec::new(),
        };
        let mut results = Vec::new();
        let start = Instant::now();
        for (p, stdin) in self.plugins.iter().zip(&stdins) {
            let call = exec::run(&p.binary, "ADD", &sb.env(p.ifname, REF_DIR), stdin)?;
            add.cpu += call.cpu;
            add.steps.push(Step {
                label: p.label.clone(),
                wall: call.wall,
            });
            results.push(call.stdout);
        }
        add.wall = start.elapsed();

        // Untimed: check the results, build the DEL stdins with prevResult.
        let mut del_stdins = Vec::new();
        for (p, out) in self.plugins.iter().zip(&results) {
            let result: Value =
                serde_json::from_slice(out).with_context(|| format!("{} ADD reply", p.label))?;
            let addr = networks::first_address(&result).unwrap_or_default();
            if !addr.starts_with(&self.nets.address_prefix(p.subnet)) {
                bail!(
                    "{} ADD: no address in {}: {result}",
                    p.label,
                    self.nets.subnet(p.subnet)
                );
            }
            let mut conf = p.config.clone();
            conf["prevResult"] = result;
            del_stdins.push(serde_json::to_vec(&conf)?);
        }
        sb.netns
            .expect_links(&["lo", "eth0", "net1", "net2"], "after the floor ADD")?;

        let mut del = FloorVerb {
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            steps: Vec::new(),
        };
        let start = Instant::now();
        for (p, stdin) in self.plugins.iter().zip(&del_stdins).rev() {
            let call = exec::run(&p.binary, "DEL", &sb.env(p.ifname, REF_DIR), stdin)?;
            del.cpu += call.cpu;
            del.steps.push(Step {
                label: p.label.clone(),
                wall: call.wall,
            });
        }
        del.wall = start.elapsed();
        sb.netns.expect_links(&["lo"], "after the floor DEL")?;
        Ok(FloorCycle { add, del })
    }

    /// After the run: no lease left.
    pub fn check_clean(&self) -> Result<()> {
        let left = topology::leases(&self.nets.ipam_dir)?;
        if !left.is_empty() {
            bail!("floor side: leases left after the run: {left:?}");
        }
        Ok(())
    }
}

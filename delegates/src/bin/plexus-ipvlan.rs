//! `plexus-ipvlan`: the ipvlan delegate as a standalone CNI plugin.

use plexus_delegates::cni::run_main;
use plexus_delegates::ipvlan::IpvlanPlugin;

fn main() -> std::process::ExitCode {
    run_main(&IpvlanPlugin::default())
}

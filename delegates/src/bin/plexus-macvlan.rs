//! `plexus-macvlan`: the macvlan delegate as a standalone CNI plugin.

use plexus_delegates::cni::run_main;
use plexus_delegates::macvlan::MacvlanPlugin;

fn main() -> std::process::ExitCode {
    run_main(&MacvlanPlugin::default())
}

//! Writes the NetworkAttachmentDefinition CRD manifest to stdout:
//! `cargo run -p plexus-crds --example crdgen > crds/manifests/network-attachment-definition.yaml`

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match plexus_crds::crd_manifest_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: cannot serialize the CRD: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = std::io::stdout().lock().write_all(yaml.as_bytes()) {
        eprintln!("crdgen: cannot write the CRD: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

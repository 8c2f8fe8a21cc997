//! Skipping tests that cannot run here, with a printed reason. Under `PLEXUS_REQUIRE_KERNEL=1`
//! (set by `scripts/vm-suites.sh` inside the QEMU guest, whose kernel has everything) a skip is a
//! failure instead, so a suite can never silently pass by skipping where it must run.

use plexus_delegates::netns::fixture;

/// The environment variable that turns skips into failures.
pub const REQUIRE_KERNEL_ENV: &str = "PLEXUS_REQUIRE_KERNEL";

/// Whether skips must fail (`PLEXUS_REQUIRE_KERNEL=1`).
pub fn skips_are_failures() -> bool {
    std::env::var(REQUIRE_KERNEL_ENV).is_ok_and(|v| v == "1")
}

/// Skip `test` for `reason`: prints `skipping <test>: <reason>` and returns false, or panics when
/// [`skips_are_failures`].
pub fn skip(test: &str, reason: &str) -> bool {
    if skips_are_failures() {
        panic!("{test}: would skip ({reason}), but {REQUIRE_KERNEL_ENV}=1 requires it to run");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

/// True when running as root; otherwise skips.
pub fn require_root(test: &str) -> bool {
    nix::unistd::geteuid().is_root() || skip(test, "needs root")
}

/// True when running as root on a kernel that can create links of `kind`; otherwise skips.
pub fn require_link_kind(test: &str, kind: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    fixture::kernel_has_link_kind(kind) || skip(test, &format!("kernel lacks {kind}"))
}

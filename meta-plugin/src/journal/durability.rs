//! Whether the journal's record update (an unsynced new file renamed over the durable pending
//! record) can be left without an fsync.
//!
//! Only a power loss (or kernel crash) is at stake: after a SIGKILL the page cache holds
//! whatever was written. After a power loss, a rename over an existing file whose new data was
//! never flushed may leave the new name with no data on most filesystems (the empty file of
//! the classic "rename without fsync" problem): the pending record, which DEL needs, would be
//! gone. Two cases are known not to do that:
//! - tmpfs: nothing in it survives a power loss (nor needs to: every sandbox is gone too);
//! - ext4 with a journal, `data=ordered` or `data=journal`, and `auto_da_alloc` (all three its
//!   defaults): a rename over an existing file forces the new file's delayed blocks to be
//!   allocated, and ordered mode writes them before the journal commit holding the rename, so
//!   a power loss leaves the old record or the new one, both complete (see `auto_da_alloc` in
//!   the kernel's ext4 documentation). Without a journal (`journal_task` is `<none>`), with
//!   `data=writeback` or `noauto_da_alloc`, that ordering is gone.
//!
//! Everything else (XFS, btrfs, ext4 without the above, or when the mount cannot be examined)
//! gets the new file's data flushed before the rename.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::stat::{major, minor};
use nix::sys::statfs::{EXT4_SUPER_MAGIC, TMPFS_MAGIC, statfs};

/// Whether a power loss after renaming an unsynced file over an existing one in `dir` leaves
/// either file complete (see the module documentation).
pub(super) fn rename_over_keeps_data(dir: &Path) -> bool {
    let Ok(fs) = statfs(dir) else {
        return false;
    };
    let kind = fs.filesystem_type();
    if kind == TMPFS_MAGIC {
        return true;
    }
    kind == EXT4_SUPER_MAGIC && ext4_device(dir).is_some_and(|dev| ext4_orders_rename_over(&dev))
}

/// The kernel's name of the block device `dir` is on (`vda`, `sda1`, `dm-0`), as used under
/// `/sys/fs/ext4` and `/proc/fs/ext4`.
fn ext4_device(dir: &Path) -> Option<String> {
    let dev = fs::metadata(dir).ok()?.dev();
    let link = fs::read_link(format!("/sys/dev/block/{}:{}", major(dev), minor(dev))).ok()?;
    link.file_name()?.to_str().map(str::to_owned)
}

fn ext4_orders_rename_over(dev: &str) -> bool {
    let journal = fs::read_to_string(format!("/sys/fs/ext4/{dev}/journal_task"));
    let options = fs::read_to_string(format!("/proc/fs/ext4/{dev}/options"));
    match (journal, options) {
        (Ok(journal), Ok(options)) => ext4_options_order_rename_over(&journal, &options),
        _ => false,
    }
}

/// `journal_task`: the journal thread's name, `<none>` without a journal. `options`: one mount
/// option a line, defaults included (`/proc/fs/ext4/<dev>/options`).
fn ext4_options_order_rename_over(journal_task: &str, options: &str) -> bool {
    let journal = journal_task.trim();
    let has_journal = !journal.is_empty() && journal != "<none>";
    let unordered = options
        .lines()
        .map(str::trim)
        .any(|o| o == "noauto_da_alloc" || o == "data=writeback");
    has_journal && !unordered
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = "rw\nbsddf\ndelalloc\nbarrier\nauto_da_alloc\nuser_xattr\ncommit=5\n";

    #[test]
    fn ext4_with_a_journal_and_default_options_orders_the_rename() {
        assert!(ext4_options_order_rename_over("jbd2/vda-8\n", DEFAULTS));
        assert!(ext4_options_order_rename_over(
            "jbd2/sda1-8",
            &format!("{DEFAULTS}data=journal\n")
        ));
    }

    #[test]
    fn ext4_without_journal_or_with_unordered_options_does_not() {
        assert!(!ext4_options_order_rename_over("<none>\n", DEFAULTS));
        assert!(!ext4_options_order_rename_over("", DEFAULTS));
        assert!(!ext4_options_order_rename_over(
            "jbd2/vda-8",
            &DEFAULTS.replace("auto_da_alloc", "noauto_da_alloc")
        ));
        assert!(!ext4_options_order_rename_over(
            "jbd2/vda-8",
            &format!("{DEFAULTS}data=writeback\n")
        ));
    }

    #[test]
    fn tmpfs_needs_no_flush() {
        let shm = Path::new("/dev/shm");
        if !statfs(shm).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC) {
            eprintln!("skipping: /dev/shm is not a tmpfs here");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        assert!(rename_over_keeps_data(dir.path()));
    }

    #[test]
    fn an_unexaminable_directory_gets_the_flush() {
        assert!(!rename_over_keeps_data(Path::new(
            "/nonexistent/plexus-journal"
        )));
    }
}

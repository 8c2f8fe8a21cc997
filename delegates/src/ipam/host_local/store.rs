//! The on-disk lease store, byte-compatible with the reference host-local plugin:
//! `<dataDir>/<network>/<ip>` holds `<containerID>\r\n<ifname>` (older versions wrote the
//! container id alone), `last_reserved_ip.<setIndex>` holds the last address handed out from
//! that range set, and every read-modify-write holds an exclusive `flock` on
//! `<dataDir>/<network>/lock`. What is flushed to disk, and why, is said where each file is
//! written (the reference flushes nothing).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::cni::netconf::ValidAttachment;
use crate::ipam::error::IpamError;

const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
const LOCK_FILE: &str = "lock";
/// The prefix of a lease being written (see `Locked::reserve`); never a lease name.
const TEMP_PREFIX: &str = ".lease-";
/// The reference plugin separates container id and ifname with CRLF and writes no trailing
/// newline.
const LINE_BREAK: &str = "\r\n";

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Attachment {
        container_id: String,
        ifname: String,
    },
    /// A lease written before the ifname was recorded.
    Legacy { container_id: String },
}

impl Owner {
    /// Parse a lease file's content (either line break is accepted).
    pub fn parse(content: &str) -> Owner {
        let content = content.trim();
        match content.split_once('\n') {
            Some((id, ifname)) => Owner::Attachment {
                container_id: id.trim().to_string(),
                ifname: ifname.trim().to_string(),
            },
            None => Owner::Legacy {
                container_id: content.to_string(),
            },
        }
    }

    /// The container that holds the lease.
    pub fn container_id(&self) -> &str {
        match self {
            Owner::Attachment { container_id, .. } | Owner::Legacy { container_id } => container_id,
        }
    }

    fn is_attachment(&self, id: &str, ifname: &str) -> bool {
        matches!(self, Owner::Attachment { container_id, ifname: i } if container_id == id && i == ifname)
    }

    fn is_legacy_of(&self, id: &str) -> bool {
        matches!(self, Owner::Legacy { container_id } if container_id == id)
    }
}

/// One lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub owner: Owner,
}

/// The lease directory of one network.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store of `network` under `data_dir`, creating the directory.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, IpamError> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir)
            .map_err(|e| IpamError::io(format!("dataDir: cannot create {}", dir.display()), e))?;
        Ok(Store { dir })
    }

    /// The store if its directory exists (DEL and GC create nothing).
    pub fn existing(data_dir: &Path, network: &str) -> Option<Store> {
        let dir = data_dir.join(network);
        dir.is_dir().then_some(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the exclusive lock; it is released when the returned guard is dropped.
    pub fn lock(&self) -> Result<Locked<'_>, IpamError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| IpamError::io(format!("cannot open lock file {}", path.display()), e))?;
        file.lock()
            .map_err(|e| IpamError::io(format!("cannot lock {}", path.display()), e))?;
        Ok(Locked {
            store: self,
            _lock: file,
        })
    }

    /// Every lease, read without the lock (STATUS only counts).
    pub fn leases_unlocked(&self) -> Result<Vec<Lease>, IpamError> {
        read_leases(&self.dir)
    }
}

/// The store with its lock held: the only way to read or change leases consistently.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a Store,
    _lock: File,
}

impl Locked<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.store.dir.join(name)
    }

    /// Create the lease file for `ip`. `Ok(false)` when someone already holds it.
    /// Records `ip` as the last reserved address of range set `set_idx`.
    ///
    /// The lease appears under its name with its content or not at all: the content goes to a
    /// temp file that is then hard-linked to the lease's name (which, like `O_EXCL`, fails when
    /// the name is taken). Creating the lease and then writing it, as the reference plugin
    /// does, leaves an empty lease when the process is killed in between: no DEL can match it
    /// to its owner, so the address leaks.
    pub fn reserve(
        &self,
        ip: IpAddr,
        container_id: &str,
        ifname: &str,
        set_idx: usize,
    ) -> Result<bool, IpamError> {
        let path = self.path(&ip.to_string());
        // Under the lock nobody else creates leases: a taken address costs no write.
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(false);
        }
        let tmp = self.path(&format!("{TEMP_PREFIX}{ip}"));
        let content = format!("{}{LINE_BREAK}{ifname}", container_id.trim());
        // Durability (the reference host-local syncs nothing; only a power loss is at stake,
        // a SIGKILL leaves the page cache): the lease's content is flushed, its directory entry
        // is not. A power loss ends every sandbox of the node, so a lease whose name is lost
        // only frees an address nobody uses any more. But a name that survives without its
        // content (a new file's data is written back later than its name on most filesystems)
        // would be a lease without an owner: no DEL ever releases it, so the address would
        // leak. Flushing the data before linking rules that out.
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(content.as_bytes())?;
                f.sync_data()
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(IpamError::io(
                format!("cannot write lease {}", path.display()),
                e,
            ));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => {
                return Err(IpamError::io(
                    format!("cannot create lease {}", path.display()),
                    e,
                ));
            }
        }
        self.write_last_reserved(set_idx, ip)?;
        Ok(true)
    }

    /// Write `last_reserved_ip.<idx>` (temp file, rename: readers never see half a file). Same
    /// bytes as the reference: the address, no newline. Not fsynced, like the reference: it
    /// only says where the next search starts, and a lost, stale or unreadable one makes the
    /// search start elsewhere (the range start), while every lease is still taken with
    /// `O_EXCL`, so no address is handed out twice.
    fn write_last_reserved(&self, set_idx: usize, ip: IpAddr) -> Result<(), IpamError> {
        let name = format!("{LAST_RESERVED_PREFIX}{set_idx}");
        let final_path = self.path(&name);
        let tmp = self.path(&format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            f.write_all(ip.to_string().as_bytes())?;
            fs::rename(&tmp, &final_path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            IpamError::io(format!("cannot write {}", final_path.display()), e)
        })?;
        Ok(())
    }

    /// Durability of removals (DEL, GC); best effort. A release must not come back after a
    /// power loss once the caller has forgotten the attachment (the meta-plugin removes its
    /// journal record durably after the DEL): the lease would then have an owner that no DEL
    /// will ever come for.
    fn sync_dir(&self) {
        if let Ok(d) = File::open(&self.store.dir) {
            let _ = d.sync_all();
        }
    }

    /// The last address reserved from range set `set_idx`, if recorded and readable.
    pub fn last_reserved(&self, set_idx: usize) -> Option<IpAddr> {
        let raw =
            fs::read_to_string(self.path(&format!("{LAST_RESERVED_PREFIX}{set_idx}"))).ok()?;
        raw.trim()
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical())
    }

    pub fn leases(&self) -> Result<Vec<Lease>, IpamError> {
        read_leases(&self.store.dir)
    }

    /// Addresses held by (container, ifname), including legacy leases of the container.
    pub fn get_by_id(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let id = container_id.trim();
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| l.owner.is_attachment(id, ifname) || l.owner.is_legacy_of(id))
            .map(|l| l.ip)
            .collect())
    }

    /// Removes the temp files of lease writers that were killed before linking them (under the
    /// lock nobody is writing one). Best effort: a temp file is never taken for a lease.
    fn remove_stale_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.store.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX))
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Remove one lease file; a missing file is not an error.
    pub fn release(&self, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.path(&ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IpamError::io(
                format!("cannot remove lease {}", path.display()),
                e,
            )),
        }
    }

    /// Release every lease of (container, ifname); when there is none, the container's legacy
    /// leases (the reference plugin's order). Returns what was released.
    pub fn release_by_id(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let id = container_id.trim();
        self.remove_stale_temps();
        let leases = self.leases()?;
        let mut mine: Vec<IpAddr> = leases
            .iter()
            .filter(|l| l.owner.is_attachment(id, ifname))
            .map(|l| l.ip)
            .collect();
        if mine.is_empty() {
            mine = leases
                .iter()
                .filter(|l| l.owner.is_legacy_of(id))
                .map(|l| l.ip)
                .collect();
        }
        self.release_all(&mine)?;
        Ok(mine)
    }

    /// Release every lease whose owner is not among `valid` (legacy leases: whose container is
    /// not). Returns what was released.
    pub fn gc(&self, valid: &[ValidAttachment]) -> Result<Vec<IpAddr>, IpamError> {
        let stale: Vec<IpAddr> = self
            .leases()?
            .into_iter()
            .filter(|l| match &l.owner {
                Owner::Attachment {
                    container_id,
                    ifname,
                } => !valid
                    .iter()
                    .any(|v| &v.container_id == container_id && &v.ifname == ifname),
                Owner::Legacy { container_id } => {
                    !valid.iter().any(|v| &v.container_id == container_id)
                }
            })
            .map(|l| l.ip)
            .collect();
        self.release_all(&stale)?;
        Ok(stale)
    }

    /// Release all of `ips`, trying every one and reporting the failures together.
    fn release_all(&self, ips: &[IpAddr]) -> Result<(), IpamError> {
        let mut failures = Vec::new();
        let mut first_err = None;
        for ip in ips {
            if let Err(e) = self.release(*ip) {
                failures.push(e.to_string());
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        self.sync_dir();
        match first_err {
            None => Ok(()),
            Some(IpamError::Io { source, .. }) => Err(IpamError::io(failures.join("; "), source)),
            Some(e) => Err(e),
        }
    }
}

/// Lease files are the entries named by an address; `lock`, `last_reserved_ip.*` and
/// temp files are not leases.
fn read_leases(dir: &Path) -> Result<Vec<Lease>, IpamError> {
    let entries = fs::read_dir(dir)
        .map_err(|e| IpamError::io(format!("cannot list leases in {}", dir.display()), e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(ip) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        // A lease removed between listing and reading is simply gone.
        let Ok(content) = fs::read_to_string(entry.path()) else {
            continue;
        };
        out.push(Lease {
            ip: ip.to_canonical(),
            owner: Owner::parse(&content),
        });
    }
    out.sort_by_key(|l| l.ip);
    Ok(out)
}

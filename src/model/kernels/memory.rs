//! Memory guard: the bytes this process can still allocate, so a request whose working set cannot fit
//! fails with a clear error instead of being killed by the out-of-memory killer half-way.
//!
//! The figure is the smallest of:
//! - `MemAvailable` of `/proc/meminfo` (the machine);
//! - for each memory cgroup of the process and its ancestors (from `/proc/self/cgroup`), the limit
//!   minus the usage, where usage leaves out inactive file pages (reclaimable cache, as `docker stats`
//!   and Kubernetes count the working set): cgroup v2 `memory.max` − (`memory.current` −
//!   `inactive_file` of `memory.stat`) under `/sys/fs/cgroup`, cgroup v1 `memory.limit_in_bytes` −
//!   (`memory.usage_in_bytes` − `total_inactive_file`) under `/sys/fs/cgroup/memory`. Inside a
//!   container the cgroup path in `/proc/self/cgroup` may name the host's hierarchy; its ancestors are
//!   tried up to the mount point, whose files are the container's own;
//! - the limit set with [`set_memory_limit`], if any.
//!
//! Where none of these can be read (not Linux, no `/proc`), there is no figure and no guard, unless a
//! limit is set.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The limit of [`set_memory_limit`]; `u64::MAX` when none.
static LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Caps the memory the guards assume this process may still use at `bytes` (`None`: no cap). The
/// guards refuse a request whose estimated working set exceeds the smallest of this cap, the
/// machine's available memory and the cgroup headroom. For a process that must stay within a budget
/// the system does not enforce, and for tests that must not depend on the host.
pub fn set_memory_limit(bytes: Option<u64>) {
    LIMIT.store(bytes.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The bytes this process can still allocate, as described in the module documentation; `None`
/// where nothing is known.
pub fn available_memory() -> Option<u64> {
    let limit = LIMIT.load(Ordering::Relaxed);
    let system = available_under(Path::new("/"));
    match (system, limit) {
        (s, u64::MAX) => s,
        (Some(s), l) => Some(s.min(l)),
        (None, l) => Some(l),
    }
}

/// The figure read from the files under `root` (`/` on a real system; a fake tree in tests).
fn available_under(root: &Path) -> Option<u64> {
    let machine = std::fs::read_to_string(root.join("proc/meminfo"))
        .ok()
        .and_then(|t| parse_mem_available(&t));
    let groups = std::fs::read_to_string(root.join("proc/self/cgroup"))
        .map(|t| cgroup_headrooms(root, &t))
        .unwrap_or_default();
    machine.into_iter().chain(groups).min()
}

fn parse_mem_available(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The cgroup versions' files: the mount point, the limit, the usage and the inactive-file key of
/// `memory.stat`.
struct Version {
    mount: &'static str,
    limit: &'static str,
    usage: &'static str,
    inactive: &'static str,
}

const V2: Version = Version {
    mount: "sys/fs/cgroup",
    limit: "memory.max",
    usage: "memory.current",
    inactive: "inactive_file",
};

const V1: Version = Version {
    mount: "sys/fs/cgroup/memory",
    limit: "memory.limit_in_bytes",
    usage: "memory.usage_in_bytes",
    inactive: "total_inactive_file",
};

/// The headroom of every limited memory cgroup of the process (`/proc/self/cgroup` is `cgroup`), and
/// of their ancestors up to each mount point.
fn cgroup_headrooms(root: &Path, cgroup: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let version = if id == "0" && controllers.is_empty() {
            &V2
        } else if controllers.split(',').any(|c| c == "memory") {
            &V1
        } else {
            continue;
        };
        let mount = root.join(version.mount);
        let mut dir: PathBuf = mount.join(path.trim_start_matches('/'));
        loop {
            if let Some(h) = headroom(&dir, version) {
                out.push(h);
            }
            if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
                break;
            }
        }
    }
    out
}

/// `limit − (usage − inactive file)` of the cgroup folder `dir`, when it has a limit.
fn headroom(dir: &Path, version: &Version) -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let limit: u64 = read(version.limit)?.trim().parse().ok()?;
    // cgroup v1 writes "no limit" as a huge page-aligned number (2^63 rounded down).
    if limit >= 1 << 62 {
        return None;
    }
    let usage: u64 = read(version.usage)?.trim().parse().ok()?;
    let inactive = read("memory.stat")
        .and_then(|s| stat_value(&s, version.inactive))
        .unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(inactive)))
}

/// The value of `key` in a `memory.stat` file.
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `bytes` as a short human-readable size (`1.5 GiB`).
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path relative to the root, content) into a fresh temporary root.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = root.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        root
    }

    const MEMINFO: &str = "MemTotal: 24000000 kB\nMemFree: 100 kB\nMemAvailable: 8388608 kB\n";
    const GIB: u64 = 1 << 30;

    #[test]
    fn parses_meminfo() {
        assert_eq!(parse_mem_available(MEMINFO), Some(8 * GIB));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human(12), "12 B");
    }

    #[test]
    fn cgroup_v2_limit_beats_meminfo() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/user.slice/job\n"),
            ("sys/fs/cgroup/user.slice/job/memory.max", "2147483648\n"),
            (
                "sys/fs/cgroup/user.slice/job/memory.current",
                "1073741824\n",
            ),
            (
                "sys/fs/cgroup/user.slice/job/memory.stat",
                "anon 1\ninactive_file 268435456\nactive_file 5\n",
            ),
            ("sys/fs/cgroup/user.slice/memory.max", "max\n"),
        ]);
        // 2 GiB − (1 GiB − 0.25 GiB of inactive cache).
        assert_eq!(available_under(root.path()), Some(GIB + GIB / 4));
    }

    #[test]
    fn a_tighter_ancestor_wins_and_the_mount_is_the_container() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/a/b\n"),
            ("sys/fs/cgroup/a/b/memory.max", "max\n"),
            ("sys/fs/cgroup/a/memory.max", "4294967296\n"),
            ("sys/fs/cgroup/a/memory.current", "4294967296\n"),
            ("sys/fs/cgroup/memory.max", "1\n"),
            ("sys/fs/cgroup/memory.current", "0\n"),
        ]);
        assert_eq!(available_under(root.path()), Some(0), "a/ is full");
        // A host path that does not exist in the container's view: the mount's own files count.
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/docker/0123abcd\n"),
            ("sys/fs/cgroup/memory.max", "536870912\n"),
            ("sys/fs/cgroup/memory.current", "0\n"),
        ]);
        assert_eq!(available_under(root.path()), Some(GIB / 2));
    }

    #[test]
    fn cgroup_v1_reads_the_memory_controller() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            (
                "proc/self/cgroup",
                "12:cpu,cpuacct:/docker/x\n4:memory:/docker/x\n1:name=systemd:/docker/x\n",
            ),
            ("sys/fs/cgroup/memory/memory.limit_in_bytes", "3221225472\n"),
            ("sys/fs/cgroup/memory/memory.usage_in_bytes", "2147483648\n"),
            (
                "sys/fs/cgroup/memory/memory.stat",
                "cache 9\ntotal_inactive_file 1073741824\n",
            ),
        ]);
        assert_eq!(available_under(root.path()), Some(2 * GIB));
        // "No limit" in v1 is 2^63 rounded down to a page: MemAvailable decides.
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "4:memory:/\n"),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("sys/fs/cgroup/memory/memory.usage_in_bytes", "1\n"),
        ]);
        assert_eq!(available_under(root.path()), Some(8 * GIB));
    }

    #[test]
    fn nothing_readable_means_no_figure() {
        let root = tree(&[("proc/self/cgroup", "garbage\n0::/x\n")]);
        assert_eq!(available_under(root.path()), None);
        let root = tree(&[
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/memory.max", "12\n"),
            ("sys/fs/cgroup/memory.current", "100\n"),
        ]);
        assert_eq!(available_under(root.path()), Some(0), "over the limit");
    }
}

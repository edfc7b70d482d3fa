//! How much memory this process may use, allocations sized by user input that fail with an
//! error instead of aborting the process, the one grammar of size flags, and the process's
//! page-size hint for counting.
//!
//! A process sees several limits at once: the machine's memory (`MemTotal`, of which
//! `MemAvailable` is free now), its cgroup's `memory.max` (a container, a systemd slice, a
//! Slurm job with cgroup confinement), the Slurm job's allocation (`SLURM_MEM_PER_NODE`, or
//! `SLURM_MEM_PER_CPU` × `SLURM_CPUS_ON_NODE`) and the address-space limit (`ulimit -v`). A
//! budget taken from the machine alone is wrong in all the others: the kernel's OOM killer,
//! or a failed `mmap` that Rust turns into an abort, ends the process instead of an error. So
//! budgets start from [`Limits::limit`], and every large allocation sized by a flag (hashed
//! buckets, say) is checked first against [`Limits::available_now`] and then allocated
//! fallibly ([`zeroed_vec`]).

use anyhow::{bail, Result};

/// The memory limits this process is under; `None` where a limit is absent or unreadable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The machine's memory (`MemTotal`).
    pub machine: Option<u64>,
    /// Memory free for new allocations now (`MemAvailable`).
    pub machine_available: Option<u64>,
    /// The smallest `memory.max` of this process's cgroup and its ancestors (cgroup v2), or
    /// `memory.limit_in_bytes` (v1).
    pub cgroup: Option<u64>,
    /// What that cgroup uses now (`memory.current`, or v1's `memory.usage_in_bytes`).
    pub cgroup_used: Option<u64>,
    /// The Slurm job's memory on this node (from its environment).
    pub slurm: Option<u64>,
    /// The address-space limit (`ulimit -v`, `RLIMIT_AS`).
    pub address_space: Option<u64>,
    /// This process's address space now (`VmSize`), which counts against `address_space`.
    pub address_space_used: Option<u64>,
}

impl Limits {
    /// Reads the limits of this process now.
    pub fn read() -> Limits {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let (cgroup, cgroup_used) = read_cgroup();
        Limits {
            machine: kib_field(&meminfo, "MemTotal:"),
            machine_available: kib_field(&meminfo, "MemAvailable:"),
            cgroup,
            cgroup_used,
            slurm: slurm_memory(&|k| std::env::var(k).ok()),
            address_space: address_space_limit(),
            address_space_used: kib_field(&status, "VmSize:"),
        }
    }

    /// The most memory this process can ever hold: the smallest of the machine, the cgroup,
    /// the Slurm job and the address-space limit.
    pub fn limit(&self) -> Option<u64> {
        [self.machine, self.cgroup, self.slurm, self.address_space]
            .into_iter()
            .flatten()
            .min()
    }

    /// What can still be allocated now: the smallest of the machine's available memory, the
    /// cgroup's limit less its use, the Slurm job's memory, and the address space left.
    pub fn available_now(&self) -> Option<u64> {
        let cgroup_left = self
            .cgroup
            .map(|m| m.saturating_sub(self.cgroup_used.unwrap_or(0)));
        let address_left = self
            .address_space
            .map(|m| m.saturating_sub(self.address_space_used.unwrap_or(0)));
        [
            self.machine_available,
            cgroup_left,
            self.slurm,
            address_left,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The limits in words, for messages and `-v`: `machine 23.4 GiB (21.9 GiB available),
    /// cgroup 8.0 GiB, Slurm job 32.0 GiB, ulimit -v 2.0 GiB`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.machine {
            let mut s = format!("machine {}", human_size(m));
            if let Some(a) = self.machine_available {
                s.push_str(&format!(" ({} available)", human_size(a)));
            }
            parts.push(s);
        }
        if let Some(c) = self.cgroup {
            let mut s = format!("cgroup memory.max {}", human_size(c));
            if let Some(u) = self.cgroup_used {
                s.push_str(&format!(" ({} in use)", human_size(u)));
            }
            parts.push(s);
        }
        if let Some(s) = self.slurm {
            parts.push(format!("Slurm job {}", human_size(s)));
        }
        if let Some(a) = self.address_space {
            parts.push(format!("ulimit -v {}", human_size(a)));
        }
        if parts.is_empty() {
            "no memory limit could be read".into()
        } else {
            parts.join(", ")
        }
    }

    /// The default budget of a memory-bounded command: a quarter of [`Limits::limit`] (the
    /// rest is the process itself, the page cache, and other work on a shared machine), at
    /// least 1 GiB where the limit allows twice that, else half the limit; 4 GiB where no
    /// limit can be read.
    pub fn default_budget(&self) -> u64 {
        match self.limit() {
            Some(l) => (l / 4).max((1u64 << 30).min(l / 2)),
            None => 4 << 30,
        }
    }
}

/// What to say of a memory budget of `budget` bytes that this process cannot hold (more than
/// [`Limits::limit`]): counting may be killed before it spills. `None` when it fits or no
/// limit can be read. `flag` names the option in the caller's words (`--memory`, `memory=`).
pub fn over_limit_warning(budget: u64, flag: &str) -> Option<String> {
    let limits = Limits::read();
    let l = limits.limit().filter(|&l| budget > l)?;
    Some(format!(
        "{flag} {} is more than this process can hold ({} at most: {}); counting may be killed before it spills: lower {flag}",
        human_size(budget),
        human_size(l),
        limits.describe()
    ))
}

/// A `KEY:   123 kB` line of /proc's files, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// A cgroup file's number: `max` (v2) and v1's "unlimited" (a page-rounded 2^63) are none.
fn cgroup_number(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&v| v < 1 << 62)
}

/// This process's cgroup limit (the smallest along its path to the root, as every ancestor's
/// limit applies) and the use of the cgroup that has it.
fn read_cgroup() -> (Option<u64>, Option<u64>) {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return (None, None);
    };
    cgroup_limits(&own, &|p| std::fs::read_to_string(p).ok())
}

/// [`read_cgroup`] over a `/proc/self/cgroup` text and a file reader (for the tests).
fn cgroup_limits(own: &str, read: &dyn Fn(&str) -> Option<String>) -> (Option<u64>, Option<u64>) {
    let mut best: (Option<u64>, Option<u64>) = (None, None);
    let mut consider = |limit: Option<u64>, used: Option<u64>| {
        if let Some(l) = limit {
            if best.0.is_none_or(|b| l < b) {
                best = (Some(l), used);
            }
        }
    };
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = match (f.next(), f.next(), f.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            // cgroup v2: walk from this cgroup up to the root.
            let mut p = path.to_string();
            loop {
                let dir = format!("/sys/fs/cgroup{p}");
                let limit = read(&format!("{dir}/memory.max")).and_then(|t| cgroup_number(&t));
                let used = read(&format!("{dir}/memory.current")).and_then(|t| cgroup_number(&t));
                consider(limit, used);
                match p.rfind('/') {
                    Some(i) if !p.is_empty() => p.truncate(i),
                    _ => break,
                }
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let dir = format!("/sys/fs/cgroup/memory{path}");
            let limit =
                read(&format!("{dir}/memory.limit_in_bytes")).and_then(|t| cgroup_number(&t));
            let used =
                read(&format!("{dir}/memory.usage_in_bytes")).and_then(|t| cgroup_number(&t));
            consider(limit, used);
        }
    }
    best
}

/// The Slurm job's memory on this node, from the variables sbatch sets inside a job
/// (megabytes): `SLURM_MEM_PER_NODE`, else `SLURM_MEM_PER_CPU` × `SLURM_CPUS_ON_NODE`.
pub fn slurm_memory(var: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    let mb = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(m) = mb("SLURM_MEM_PER_NODE").filter(|&m| m > 0) {
        return Some(m.saturating_mul(1 << 20));
    }
    let per_cpu = mb("SLURM_MEM_PER_CPU").filter(|&m| m > 0)?;
    let cpus = mb("SLURM_CPUS_ON_NODE").unwrap_or(1).max(1);
    Some(per_cpu.saturating_mul(cpus).saturating_mul(1 << 20))
}

/// Parses sbatch's `--mem` value (`32G`, `32000`, `500M`, `1T`; a bare number is megabytes,
/// as sbatch reads it) into bytes; `None` for `0` (all of the node's memory) or what sbatch
/// would not take.
pub fn parse_slurm_mem(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1u64 << 10),
        'M' => (&t[..t.len() - 1], 1 << 20),
        'G' => (&t[..t.len() - 1], 1 << 30),
        'T' => (&t[..t.len() - 1], 1 << 40),
        _ => (&t[..], 1 << 20),
    };
    let n: u64 = num.parse().ok()?;
    (n > 0).then(|| n.saturating_mul(mult))
}

fn address_space_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) };
    (rc == 0 && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

/// Fails, with the figures, when `bytes` more than this process can still allocate
/// ([`Limits::available_now`]); `what` says what would need them, in the user's words (e.g.
/// `--ngram-buckets 1073741824 (3 orders × 3 workers × 8 bytes)`).
pub fn check_allocation(bytes: u64, what: &str) -> Result<()> {
    let limits = Limits::read();
    if let Some(avail) = limits.available_now() {
        if bytes > avail {
            bail!(
                "{what} needs {} of memory, more than the {} this process can still allocate ({}): lower it",
                human_size(bytes),
                human_size(avail),
                limits.describe()
            );
        }
    }
    Ok(())
}

/// Integer and float types whose all-zero bytes are the value 0.
pub trait Zeroed: Copy {}
impl Zeroed for u8 {}
impl Zeroed for u32 {}
impl Zeroed for u64 {}
impl Zeroed for i64 {}
impl Zeroed for f64 {}

/// `vec![0; n]`, but an allocation the system refuses (an address-space limit, a full
/// machine without overcommit) is an error naming `what` instead of an abort. Like
/// `vec![0; n]` it asks for zeroed pages (`calloc`), which the kernel maps lazily.
pub fn zeroed_vec<T: Zeroed>(n: usize, what: &str) -> Result<Vec<T>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let Ok(layout) = std::alloc::Layout::array::<T>(n) else {
        bail!("{what}: {n} elements do not fit in this machine's address space");
    };
    // SAFETY: the layout has a non-zero size; T is an integer or float type (Zeroed), for
    // which zeroed bytes are a valid value, so the Vec owns `n` initialised elements,
    // allocated by the global allocator with exactly this layout.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut T;
        if ptr.is_null() {
            bail!(
                "{what}: cannot allocate {} ({}): lower it",
                human_size(layout.size() as u64),
                Limits::read().describe()
            );
        }
        Ok(Vec::from_raw_parts(ptr, n, n))
    }
}

/// Parses a size, the one grammar of every size flag (`--memory`, `--olmo-file-size`):
/// a number of bytes, or a number (decimals allowed) with a unit K, M, G or T (powers of
/// 1024), case-insensitive, optionally followed by `B` or `iB` and separated by spaces:
/// `512M`, `2G`, `1.5GiB`, `64 kb`, `1000`.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || anyhow::anyhow!("not a size: {s:?} (use e.g. 512M, 2G or a number of bytes)");
    let upper = s.trim().to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper)
        .trim_end();
    let (num, mult) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1u64 << 10),
        Some('M') => (&body[..body.len() - 1], 1 << 20),
        Some('G') => (&body[..body.len() - 1], 1 << 30),
        Some('T') => (&body[..body.len() - 1], 1 << 40),
        // A number with another unit ("64X"): say which units there are.
        Some(c)
            if c.is_ascii_alphabetic() && body[..body.len() - 1].trim().parse::<f64>().is_ok() =>
        {
            bail!("not a size: {s:?} (the unit must be K, M, G or T, e.g. 512M or 2G)")
        }
        _ => (body, 1),
    };
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    if !x.is_finite() || x < 0.0 || x * mult as f64 > u64::MAX as f64 {
        return Err(bad());
    }
    Ok((x * mult as f64) as u64)
}

/// Sizes for people: `1.5 GiB`, `312 MiB`, `4.0 KiB`, `17 B`.
pub fn human_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if x >= 100.0 {
        format!("{x:.0} {}", UNITS[u])
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`), unless
/// the user set mimalloc's own `MIMALLOC_ALLOW_THP`, which then decides. Exact counting first
/// touches gigabytes of list pages; mimalloc asks for huge pages for its large regions, and on
/// the Intel Xeon KVM guest of 2026-12-03 the kernel's zeroing of them took 4.7-7.6 s of
/// system time for the registry's 4-grams against 0.8-3.3 s with 4 KiB pages (wall 10.0-11.7 s
/// against 7.9-10.3 s, interleaved; same bytes). A hint about pages only: results never
/// depend on it, and a kernel without the call ignores it. Called by the commands that count
/// (`profile`, `proximity`, `suggest-mix`), not by the library or the Python package, whose
/// process is the user's.
pub fn prefer_small_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_limit_wins() {
        let l = Limits {
            machine: Some(512 << 30),
            machine_available: Some(400 << 30),
            cgroup: Some(32 << 30),
            cgroup_used: Some(2 << 30),
            slurm: Some(64 << 30),
            address_space: None,
            address_space_used: Some(1 << 30),
        };
        assert_eq!(l.limit(), Some(32 << 30));
        assert_eq!(l.available_now(), Some(30 << 30));
        assert_eq!(l.default_budget(), 8 << 30);
        let d = l.describe();
        assert!(d.contains("cgroup memory.max 32.0 GiB"), "{d}");
        assert!(d.contains("Slurm job 64.0 GiB"), "{d}");
        // A small limit: half of it, not the 1 GiB floor.
        let small = Limits {
            address_space: Some(1 << 30),
            ..Limits::default()
        };
        assert_eq!(small.default_budget(), 512 << 20);
        assert_eq!(Limits::default().default_budget(), 4 << 30);
    }

    #[test]
    fn cgroup_v2_takes_the_smallest_ancestor_and_v1_its_controller() {
        let files = |p: &str| -> Option<String> {
            match p {
                "/sys/fs/cgroup/memory.max" => Some("max\n".into()),
                "/sys/fs/cgroup/job/memory.max" => Some("8589934592\n".into()),
                "/sys/fs/cgroup/job/memory.current" => Some("1073741824\n".into()),
                "/sys/fs/cgroup/job/step/memory.max" => Some("max\n".into()),
                "/sys/fs/cgroup/memory/slurm/memory.limit_in_bytes" => {
                    Some("9223372036854771712\n".into())
                }
                _ => None,
            }
        };
        assert_eq!(
            cgroup_limits("0::/job/step\n", &files),
            (Some(8 << 30), Some(1 << 30))
        );
        // v1 without a limit (page-rounded 2^63) is none.
        assert_eq!(
            cgroup_limits("4:memory:/slurm\n2:cpu:/x\n", &files),
            (None, None)
        );
        assert_eq!(cgroup_limits("garbage", &files), (None, None));
    }

    #[test]
    fn slurm_memory_from_its_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(a, _)| *a == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            slurm_memory(&env(&[("SLURM_MEM_PER_NODE", "32768")])),
            Some(32 << 30)
        );
        assert_eq!(
            slurm_memory(&env(&[
                ("SLURM_MEM_PER_CPU", "4096"),
                ("SLURM_CPUS_ON_NODE", "4")
            ])),
            Some(16 << 30)
        );
        assert_eq!(slurm_memory(&env(&[])), None);
        assert_eq!(parse_slurm_mem("32G"), Some(32 << 30));
        assert_eq!(parse_slurm_mem("32000"), Some(32000 << 20));
        assert_eq!(parse_slurm_mem("512m"), Some(512 << 20));
        assert_eq!(parse_slurm_mem("0"), None);
        assert_eq!(parse_slurm_mem("lots"), None);
    }

    #[test]
    fn sizes_parse_as_powers_of_1024() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("64kb").unwrap(), 64 << 10);
        assert_eq!(parse_size("64 K").unwrap(), 64 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("1000B").unwrap(), 1000);
        for bad in ["lots", "-1G", "1X", "NaN", "inf", "", "G", "1e30T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refused_allocations_are_errors() {
        // More than any address space: the layout itself fails.
        let e = zeroed_vec::<u64>(usize::MAX / 4, "test table").unwrap_err();
        assert!(e.to_string().contains("test table"), "{e}");
        let v = zeroed_vec::<u64>(1000, "small").unwrap();
        assert!(v.len() == 1000 && v.iter().all(|&x| x == 0));
        let e = check_allocation(u64::MAX, "--flag 9")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--flag 9") && e.contains("can still allocate"),
            "{e}"
        );
    }
}

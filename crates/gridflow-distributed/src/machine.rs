//! What this process may use of the machine: cores and memory, as Dask's `Client()` sizes a
//! local cluster — the memory limit that applies to the process (cgroup v2 `memory.max`, a
//! Slurm allocation), not only the machine's total.

/// The resident memory of a process in bytes (`VmRSS`), if it can be read.
pub fn process_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Parses a cgroup v2 `memory.max` ("max" or bytes).
pub fn parse_cgroup_max(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok()
}

/// Parses `/proc/meminfo`'s `MemTotal` in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024))
}

/// The memory of a Slurm allocation from its environment variables (megabytes):
/// `SLURM_MEM_PER_NODE`, or `SLURM_MEM_PER_CPU` × `SLURM_CPUS_ON_NODE`.
pub fn slurm_memory(var: impl Fn(&str) -> Option<String>) -> Option<u64> {
    let mb = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(m) = mb("SLURM_MEM_PER_NODE") {
        return Some(m.saturating_mul(1 << 20));
    }
    let per_cpu = mb("SLURM_MEM_PER_CPU")?;
    let cpus = mb("SLURM_CPUS_ON_NODE").unwrap_or(1);
    Some(per_cpu.saturating_mul(cpus).saturating_mul(1 << 20))
}

/// The cgroup v2 directory of this process (`0::/path` in `/proc/self/cgroup`).
fn own_cgroup_max() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut dir = std::path::PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    // A limit set on a parent group applies too: the smallest on the way up counts.
    let mut least: Option<u64> = None;
    loop {
        if let Some(m) = std::fs::read_to_string(dir.join("memory.max"))
            .ok()
            .and_then(|t| parse_cgroup_max(&t))
        {
            least = Some(least.map_or(m, |l| l.min(m)));
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            return least;
        }
    }
}

/// The cgroup v1 memory limit of this process (`N:memory:/path` in `/proc/self/cgroup`);
/// "no limit" reads as a huge number, which the machine's total then undercuts.
fn own_cgroup_v1_limit() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    let dir = std::path::PathBuf::from("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Bytes of memory this process may use: the least of the machine's total, its cgroup's
/// limit (v2 `memory.max`, or v1 `memory.limit_in_bytes`) and a Slurm allocation (8 GiB when
/// none can be read).
pub fn available_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_meminfo_total(&t));
    [
        total,
        own_cgroup_max(),
        own_cgroup_v1_limit(),
        slurm_memory(|k| std::env::var(k).ok()),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(8 << 30)
}

/// Workers and threads per worker for a local cluster on `cores` cores, as Dask's
/// `Client()` chooses: up to four cores, one single-threaded worker each; beyond, about
/// √cores workers sharing the cores.
pub fn default_layout(cores: usize) -> (usize, usize) {
    let cores = cores.max(1);
    if cores <= 4 {
        return (cores, 1);
    }
    let mut workers = (cores as f64).sqrt().round() as usize;
    while workers > 1 && !cores.is_multiple_of(workers) {
        workers -= 1;
    }
    (workers, cores / workers)
}

/// CPU time this process has used (user + system, all threads), in seconds, from
/// `/proc/self/stat`; `None` where that cannot be read.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // utime and stime are fields 14 and 15: the 12th and 13th after the paren.
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    // Linux reports them in USER_HZ ticks, 100 per second on every architecture it
    // exposes to user space.
    Some((utime + stime) / 100.0)
}

/// This process's CPU use between samples, in percent of one core (Dask's worker `cpu`).
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: Option<(std::time::Instant, f64)>,
    percent: f32,
}

impl CpuMeter {
    /// Samples now: the use since the previous sample (0 at the first).
    pub fn sample(&mut self) -> f32 {
        let now = std::time::Instant::now();
        if let Some(cpu) = process_cpu_seconds() {
            if let Some((t, c)) = self.last {
                let wall = now.duration_since(t).as_secs_f64();
                if wall > 0.0 {
                    self.percent = (100.0 * (cpu - c).max(0.0) / wall) as f32;
                }
            }
            self.last = Some((now, cpu));
        }
        self.percent
    }

    /// The last sample's value.
    pub fn last(&self) -> f32 {
        self.percent
    }
}

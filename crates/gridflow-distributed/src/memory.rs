//! A worker's data store with Dask's memory thresholds: results in memory are counted
//! (managed bytes); above 60% of the memory limit the least recently used are spilled to
//! the local directory, above 70% of the process's resident memory more are spilled, and
//! above 80% threads stop starting tasks until spilling brings memory back down (the nanny
//! restarts a worker past 95%, see [`crate::cluster`]). Spilling runs on its own thread,
//! never on a task thread or a connection handler; a spilled result is read back
//! transparently when a task or a peer asks for it.
//!
//! A spill file holds the value as it travels on the wire: `u32` LE header length, the
//! [`WireValue`] header, then the body.

use gridflow_runtime::WireValue;
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The fractions of the memory limit at which a worker acts (Dask's defaults).
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Managed bytes above this fraction are spilled, least recently used first.
    pub target: f64,
    /// Process memory (RSS) above this fraction spills more.
    pub spill: f64,
    /// Process memory above this fraction pauses: no new task starts.
    pub pause: f64,
    /// Process memory above this fraction: the nanny restarts the worker.
    pub terminate: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            target: 0.6,
            spill: 0.7,
            pause: 0.8,
            terminate: 0.95,
        }
    }
}

/// Bytes a worker holds, as reported to the scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Bytes of results in memory.
    pub managed: u64,
    /// Bytes of results spilled to disk.
    pub spilled: u64,
    /// The process's resident memory.
    pub rss: u64,
}

struct Entry<V> {
    value: Arc<V>,
    nbytes: u64,
    last_use: u64,
}

struct Inner<V> {
    memory: FxHashMap<u64, Entry<V>>,
    /// Spilled results: id → bytes.
    disk: FxHashMap<u64, u64>,
    managed: u64,
    spilled: u64,
    clock: u64,
    /// The last spill error (a full disk), reported once.
    spill_error: Option<String>,
    /// Spilled results that queued tasks will read: the spill thread reads them back
    /// ahead, so task threads rarely touch the disk.
    wanted: std::collections::VecDeque<u64>,
    stop: bool,
}

/// What the spill thread does next.
enum Job<V> {
    /// Write this result (chosen at this use count) to disk.
    Spill(u64, Arc<V>, u64),
    /// Read this spilled result back.
    Unspill(u64),
}

/// The results a worker holds, in memory or spilled.
pub struct DataStore<V> {
    inner: Mutex<Inner<V>>,
    wake: Condvar,
    nbytes: fn(&V) -> usize,
    limit: u64,
    thresholds: Thresholds,
    dir: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The resident memory of this process in bytes (`VmRSS`), 0 if it cannot be read.
pub fn own_rss() -> u64 {
    crate::machine::process_rss(std::process::id()).unwrap_or(0)
}

impl<V: WireValue> DataStore<V> {
    /// A store for a worker of `limit` bytes (0: no limit, nothing is spilled) spilling to
    /// `dir` (created if missing); `nbytes` measures a value.
    pub fn new(
        limit: u64,
        dir: Option<PathBuf>,
        nbytes: fn(&V) -> usize,
        thresholds: Thresholds,
    ) -> std::io::Result<Arc<DataStore<V>>> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d)?;
        }
        Ok(Arc::new(DataStore {
            inner: Mutex::new(Inner {
                memory: FxHashMap::default(),
                disk: FxHashMap::default(),
                managed: 0,
                spilled: 0,
                clock: 0,
                spill_error: None,
                wanted: std::collections::VecDeque::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            nbytes,
            limit,
            thresholds,
            dir,
        }))
    }

    /// True when this store spills (a limit and a directory).
    pub fn spills(&self) -> bool {
        self.limit > 0 && self.dir.is_some()
    }

    fn path(&self, id: u64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{id}.gfspill")))
    }

    /// Stores a result; wakes the spill thread when managed memory passes the target.
    pub fn insert(&self, id: u64, value: Arc<V>) {
        let nbytes = (self.nbytes)(&value) as u64;
        let mut g = lock(&self.inner);
        g.clock += 1;
        let last_use = g.clock;
        if let Some(old) = g.memory.insert(
            id,
            Entry {
                value,
                nbytes,
                last_use,
            },
        ) {
            g.managed -= old.nbytes;
        }
        if let Some(b) = g.disk.remove(&id) {
            g.spilled -= b;
            if let Some(p) = self.path(id) {
                let _ = std::fs::remove_file(p);
            }
        }
        g.managed += nbytes;
        if self.spills() && g.managed as f64 > self.thresholds.target * self.limit as f64 {
            self.wake.notify_all();
        }
    }

    /// True when the result is held (in memory or spilled).
    pub fn contains_key(&self, id: &u64) -> bool {
        let g = lock(&self.inner);
        g.memory.contains_key(id) || g.disk.contains_key(id)
    }

    /// Drops a result.
    pub fn remove(&self, id: &u64) {
        let mut g = lock(&self.inner);
        if let Some(e) = g.memory.remove(id) {
            g.managed -= e.nbytes;
        }
        if let Some(b) = g.disk.remove(id) {
            g.spilled -= b;
            if let Some(p) = self.path(*id) {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// A result, read back from disk if it was spilled (it then counts as managed again
    /// and may be spilled again later). `Err` when the spill file cannot be read.
    pub fn get(&self, id: &u64) -> Result<Option<Arc<V>>, String> {
        {
            let mut g = lock(&self.inner);
            g.clock += 1;
            let now = g.clock;
            if let Some(e) = g.memory.get_mut(id) {
                e.last_use = now;
                return Ok(Some(e.value.clone()));
            }
            if !g.disk.contains_key(id) {
                return Ok(None);
            }
        }
        self.unspill(*id).map(Some)
    }

    /// Reads a spilled result back into memory (if it was not released meanwhile; then it
    /// is returned all the same). Another thread may be reading the same file: whichever
    /// finishes first puts it back, the other's copy is dropped.
    fn unspill(&self, id: u64) -> Result<Arc<V>, String> {
        let Some(path) = self.path(id) else {
            return Err(format!(
                "result {id} was spilled but this worker has no spill directory"
            ));
        };
        let read = std::fs::read(&path);
        let mut g = lock(&self.inner);
        if let Some(e) = g.memory.get(&id) {
            // Put back by another thread meanwhile.
            return Ok(e.value.clone());
        }
        let bytes =
            read.map_err(|e| format!("reading the spilled result {}: {e}", path.display()))?;
        let value = decode_spill::<V>(&bytes)
            .map_err(|e| format!("the spill file {} is corrupt: {e}", path.display()))?;
        let value = Arc::new(value);
        // Still wanted (not released while it was read)?
        if let Some(b) = g.disk.remove(&id) {
            g.spilled -= b;
            let _ = std::fs::remove_file(&path);
            g.clock += 1;
            let last_use = g.clock;
            let nbytes = (self.nbytes)(&value) as u64;
            g.memory.insert(
                id,
                Entry {
                    value: value.clone(),
                    nbytes,
                    last_use,
                },
            );
            g.managed += nbytes;
        }
        Ok(value)
    }

    /// Tasks about to run will read `ids`: the spilled ones among them are read back by the
    /// spill thread ahead of them, while memory is below the spill target.
    pub fn prefetch(&self, ids: &[u64]) {
        if !self.spills() {
            return;
        }
        let mut g = lock(&self.inner);
        let mut any = false;
        for id in ids {
            if g.disk.contains_key(id) && !g.wanted.contains(id) {
                g.wanted.push_back(*id);
                any = true;
            }
        }
        drop(g);
        if any {
            self.wake.notify_all();
        }
    }

    /// Managed, spilled and resident bytes now.
    pub fn usage(&self) -> MemoryUse {
        let g = lock(&self.inner);
        MemoryUse {
            managed: g.managed,
            spilled: g.spilled,
            rss: own_rss(),
        }
    }

    /// The last spill error (a full disk), once.
    pub fn take_spill_error(&self) -> Option<String> {
        lock(&self.inner).spill_error.take()
    }

    /// True when the worker should pause: process memory above the pause threshold while
    /// results are a real part of it (so that spilling can bring it down).
    pub fn should_pause(&self) -> bool {
        if !self.spills() {
            return false;
        }
        let g = lock(&self.inner);
        let target = self.thresholds.target * self.limit as f64;
        g.managed as f64 > target / 4.0
            && (own_rss().max(g.managed) as f64) > self.thresholds.pause * self.limit as f64
    }

    /// Blocks a task thread while the worker is paused: process memory above the pause
    /// threshold and something left to spill. Returns at once without a limit.
    pub fn wait_while_paused(&self) {
        if !self.spills() {
            return;
        }
        let pause = self.thresholds.pause * self.limit as f64;
        let mut waited = 0;
        loop {
            let over = {
                let g = lock(&self.inner);
                if g.stop {
                    return;
                }
                // As for spilling: once results are a small part of memory, spilling cannot
                // free the rest (allocator caches, buffers), and waiting would not help.
                let target = self.thresholds.target * self.limit as f64;
                let spillable = g.memory.values().any(|e| Arc::strong_count(&e.value) == 1)
                    && g.managed as f64 > target / 4.0;
                spillable && (own_rss().max(g.managed) as f64) > pause
            };
            // Never wait forever: memory the spill thread cannot free is not ours to wait on.
            if !over || waited >= 200 {
                return;
            }
            self.wake.notify_all();
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
    }

    /// Stops the spill thread.
    pub fn stop(&self) {
        lock(&self.inner).stop = true;
        self.wake.notify_all();
    }

    /// The spill thread's loop: spills least-recently-used results not in use while
    /// managed bytes are above the target or the process's memory above the spill
    /// threshold; otherwise sleeps until woken (or 100 ms, to watch the process's memory).
    pub fn spill_loop(&self) {
        if !self.spills() {
            return;
        }
        let target = (self.thresholds.target * self.limit as f64) as u64;
        let spill_rss = (self.thresholds.spill * self.limit as f64) as u64;
        loop {
            let job = {
                let mut g = lock(&self.inner);
                loop {
                    if g.stop {
                        return;
                    }
                    let over_target = g.managed > target;
                    // Spilling for RSS stops once managed memory is small: the rest is not
                    // results, and spilling cannot free it.
                    let over_rss = own_rss() > spill_rss && g.managed > target / 4;
                    if (over_target || over_rss) && g.spill_error.is_none() {
                        let lru = g
                            .memory
                            .iter()
                            .filter(|(_, e)| Arc::strong_count(&e.value) == 1)
                            .min_by_key(|(_, e)| e.last_use)
                            .map(|(id, e)| (*id, e.value.clone(), e.last_use));
                        if let Some((id, v, last_use)) = lru {
                            break Job::Spill(id, v, last_use);
                        }
                    } else if !over_target && !over_rss {
                        // Room below the target: read back what queued tasks will read.
                        let mut next = None;
                        while let Some(id) = g.wanted.pop_front() {
                            if let Some(&b) = g.disk.get(&id) {
                                // Only what would not be spilled again at once.
                                let fits = g.managed + b <= target
                                    && (own_rss() + b <= spill_rss || g.managed + b <= target / 4);
                                if fits {
                                    next = Some(id);
                                }
                                break;
                            }
                        }
                        if let Some(id) = next {
                            break Job::Unspill(id);
                        }
                    }
                    let (ng, _) = self
                        .wake
                        .wait_timeout(g, Duration::from_millis(100))
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    g = ng;
                    // A full disk is retried after a while, not in a busy loop.
                    if g.spill_error.is_some() {
                        g.spill_error = None;
                    }
                }
            };
            let (id, value, last_use) = match job {
                Job::Spill(id, value, last_use) => (id, value, last_use),
                Job::Unspill(id) => {
                    if let Err(e) = self.unspill(id) {
                        // The task that reads it will report the error.
                        tracing::error!("gridflow worker: {e}");
                    }
                    continue;
                }
            };
            let Some(path) = self.path(id) else { return };
            let written = write_spill(&path, &*value);
            drop(value);
            let mut g = lock(&self.inner);
            match written {
                Ok(()) => {
                    // Unchanged since it was chosen (not released, not used meanwhile)?
                    let same = g.memory.get(&id).is_some_and(|e| e.last_use == last_use);
                    if same {
                        if let Some(e) = g.memory.remove(&id) {
                            g.managed -= e.nbytes;
                            g.spilled += e.nbytes;
                            g.disk.insert(id, e.nbytes);
                        }
                    } else {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    let msg = format!(
                        "spilling a result to {} failed ({e}); keeping results in memory",
                        path.display()
                    );
                    tracing::warn!("gridflow worker: {msg}");
                    g.spill_error = Some(msg);
                }
            }
        }
    }
}

impl<V> Drop for DataStore<V> {
    fn drop(&mut self) {
        // Spill files do not outlive the worker.
        if let Some(d) = &self.dir {
            let ids: Vec<u64> = lock(&self.inner).disk.keys().copied().collect();
            for id in ids {
                let _ = std::fs::remove_file(d.join(format!("{id}.gfspill")));
            }
        }
    }
}

/// Writes `value` in the spill format (the wire encoding).
pub fn write_spill<V: WireValue>(path: &Path, value: &V) -> std::io::Result<()> {
    use std::io::Write;
    let mut header = Vec::new();
    value.write_header(&mut header);
    let len = u32::try_from(header.len())
        .map_err(|_| std::io::Error::other("value header above 4 GiB"))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&len.to_le_bytes())?;
    f.write_all(&header)?;
    f.write_all(&value.body())?;
    // No sync: the point is to free memory, and the file dies with the worker anyway.
    f.flush()
}

/// Reads a value written by [`write_spill`].
pub fn decode_spill<V: WireValue>(bytes: &[u8]) -> Result<V, String> {
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("shorter than its header length")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!(
            "header of {len} bytes but only {} bytes follow",
            rest.len()
        ));
    }
    let (header, body) = rest.split_at(len);
    V::from_parts(header, body.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Results over the target are spilled by the spill thread; once memory is free again,
    /// the spilled results that queued tasks will read are read back by that thread too,
    /// so the task thread finds them in memory.
    #[test]
    fn the_spill_thread_spills_and_reads_back_ahead_of_tasks() {
        let dir = std::env::temp_dir().join(format!("gridflow-spill-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // 1 MiB limit: the target (60%) holds 6 results of 100 KB. The test process's own
        // memory is far above 70% of that limit: spilling by RSS is left out here.
        let thresholds = Thresholds {
            spill: 1e6,
            ..Thresholds::default()
        };
        let store: Arc<DataStore<Vec<u8>>> =
            DataStore::new(1 << 20, Some(dir.clone()), Vec::len, thresholds).unwrap();
        let spiller = {
            let s = store.clone();
            std::thread::spawn(move || s.spill_loop())
        };
        for id in 0..10u64 {
            store.insert(id, Arc::new(vec![id as u8; 100_000]));
        }
        assert!(
            wait_until(|| store.usage().managed <= (0.6 * f64::from(1 << 20)) as u64),
            "never spilled down to the target: {:?}",
            store.usage()
        );
        let spilled: Vec<u64> = (0..10)
            .filter(|id| lock(&store.inner).disk.contains_key(id))
            .collect();
        assert!(spilled.len() >= 4, "{spilled:?}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), spilled.len());
        // Free room, then announce a task reading two spilled results.
        let kept: Vec<u64> = (0..10).filter(|id| !spilled.contains(id)).collect();
        for id in &kept {
            store.remove(id);
        }
        let want = [spilled[0], spilled[1]];
        store.prefetch(&want);
        assert!(
            wait_until(|| {
                let g = lock(&store.inner);
                want.iter().all(|id| g.memory.contains_key(id))
            }),
            "the spill thread did not read them back"
        );
        for id in want {
            let v = store.get(&id).unwrap().unwrap();
            assert_eq!(*v, vec![id as u8; 100_000]);
        }
        // Values stay intact through spill and read-back; the rest is still on disk.
        let last = *spilled.last().unwrap();
        assert!(lock(&store.inner).disk.contains_key(&last));
        assert_eq!(
            *store.get(&last).unwrap().unwrap(),
            vec![last as u8; 100_000]
        );
        store.stop();
        spiller.join().unwrap();
        drop(store);
        assert_eq!(
            std::fs::read_dir(&dir).map_or(0, |d| d.count()),
            0,
            "spill files left behind"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

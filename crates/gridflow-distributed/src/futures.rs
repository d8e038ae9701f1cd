//! Futures: handles on results held on the workers ([`crate::Client::submit`],
//! [`crate::Client::scatter`]). A result lives while a handle on it does: dropping the last
//! one tells the scheduler to forget it (a running job whose results nobody holds any more
//! is cancelled), as Dask's reference counting does.

use crate::client::{Inner, JobStatus, State, lock};

use crate::{DistError, Result};
use gridflow_graph::Key;
use gridflow_runtime::WireValue;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Held results of one job, registered with the client by key so that later graphs read
/// them; released when dropped.
pub(crate) struct Hold {
    client: Arc<Inner>,
    job: u64,
    ids: Vec<(Key, u64)>,
    released: AtomicBool,
}

impl Hold {
    pub(crate) fn new(client: Arc<Inner>, job: u64, ids: Vec<(Key, u64)>) -> Hold {
        {
            let mut st = lock(&client.state);
            for (k, id) in &ids {
                let e = st.held.entry(k.clone()).or_insert((*id, 0));
                if e.0 != *id {
                    // A newer result for the same key: later graphs read that one.
                    *e = (*id, 0);
                }
                e.1 += 1;
            }
            *st.holds.entry(job).or_default() += 1;
        }
        Hold {
            client,
            job,
            ids,
            released: AtomicBool::new(false),
        }
    }

    pub(crate) fn keys(&self) -> Vec<Key> {
        self.ids.iter().map(|(k, _)| k.clone()).collect()
    }

    /// Unregisters the keys and queues their release (once).
    fn release(&self) {
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut st = lock(&self.client.state);
            for (k, id) in &self.ids {
                if let Some(e) = st.held.get_mut(k)
                    && e.0 == *id
                {
                    e.1 = e.1.saturating_sub(1);
                    if e.1 == 0 {
                        st.held.remove(k);
                    }
                }
                st.to_release.push(*id);
            }
            // Forget the job's status once no handle on it is left.
            let left = st.holds.get_mut(&self.job).map_or(0, |n| {
                *n = n.saturating_sub(1);
                *n
            });
            if left == 0 {
                st.holds.remove(&self.job);
                st.jobs.remove(&self.job);
            }
        }
        self.client.release_soon();
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.release();
    }
}

/// The result of a submitted task (or scattered value), held on a worker. Clones share
/// the handle; the result is released when the last clone is dropped.
pub struct Future<V> {
    hold: Arc<Hold>,
    index: usize,
    cancelled: Arc<AtomicBool>,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for Future<V> {
    fn clone(&self) -> Future<V> {
        Future {
            hold: self.hold.clone(),
            index: self.index,
            cancelled: self.cancelled.clone(),
            _value: PhantomData,
        }
    }
}

impl<V> std::fmt::Debug for Future<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Future({}, {:?})", self.key(), self.status())
    }
}

/// Where a future is, as far as the client has heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FutureStatus {
    /// Not finished yet.
    Pending,
    /// The result is held on a worker.
    Finished,
    /// A task failed (the message says which and why).
    Error(String),
    /// [`Future::cancel`] was called.
    Cancelled,
}

impl<V> Future<V> {
    pub(crate) fn new(hold: Arc<Hold>, index: usize) -> Future<V> {
        Future {
            hold,
            index,
            cancelled: Arc::new(AtomicBool::new(false)),
            _value: PhantomData,
        }
    }

    /// The key under which later graphs on the same client read this result.
    pub fn key(&self) -> Key {
        self.hold.ids[0].0.clone()
    }

    pub(crate) fn job(&self) -> u64 {
        self.hold.job
    }

    /// True once the scheduler has reported the job (finished or failed), or it was
    /// cancelled.
    pub(crate) fn finished_in(&self, st: &State) -> bool {
        self.cancelled.load(Ordering::SeqCst)
            || !matches!(st.jobs.get(&self.hold.job), Some((JobStatus::Pending, _)))
    }

    /// The status as far as messages received so far say (does not wait).
    pub fn status(&self) -> FutureStatus {
        if self.cancelled.load(Ordering::SeqCst) {
            return FutureStatus::Cancelled;
        }
        match lock(&self.hold.client.state).jobs.get(&self.hold.job) {
            Some((JobStatus::Pending, _)) => FutureStatus::Pending,
            Some((JobStatus::Done(_), _)) => FutureStatus::Finished,
            Some((JobStatus::Failed(key, op, message, _), _)) => FutureStatus::Error(format!(
                "task {} failed in {op}: {message}",
                key.as_ref()
                    .map_or_else(|| self.key().to_string(), Key::to_string)
            )),
            None => FutureStatus::Cancelled,
        }
    }

    /// Cancels the future: the scheduler forgets its result (and stops computing it when
    /// no other handle needs it); `result` then fails with [`DistError::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.hold.release();
    }

    /// Waits for the result and fetches it from the worker holding it.
    pub fn result(&self) -> Result<Arc<V>>
    where
        V: WireValue,
    {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(DistError::Cancelled { key: self.key() });
        }
        let status = self.hold.client.wait_jobs(&[self.hold.job], true)?;
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(DistError::Cancelled { key: self.key() });
        }
        match status {
            JobStatus::Done(locations) => {
                let id = self.hold.ids[0].1;
                let loc = locations
                    .iter()
                    .find(|l| l.id == id)
                    .or_else(|| locations.get(self.index))
                    .cloned()
                    .ok_or_else(|| {
                        DistError::Cluster(format!("no location for the result of {}", self.key()))
                    })?;
                let client = &self.hold.client;
                let mut v = match client.gather::<V>(std::slice::from_ref(&loc)) {
                    Ok(v) => v,
                    // The holder named when the job finished may be gone (retired, lost):
                    // ask where the result is now, remember it, and fetch it from there.
                    Err(first) => {
                        let now = client.locate(&[id]).map_err(|e| {
                            DistError::Cluster(format!(
                                "the result of {}: {first}; locating it again: {e}",
                                self.key()
                            ))
                        })?;
                        if let Some(l) = now.first() {
                            let mut st = lock(&client.state);
                            if let Some((JobStatus::Done(ls), _)) = st.jobs.get_mut(&self.hold.job)
                            {
                                for x in ls.iter_mut().filter(|x| x.id == l.id) {
                                    x.address.clone_from(&l.address);
                                }
                            }
                        }
                        client.gather::<V>(&now)?
                    }
                };
                v.pop().ok_or_else(|| {
                    DistError::Cluster(format!("the result of {} was not sent", self.key()))
                })
            }
            JobStatus::Failed(key, op, message, panicked) => Err(DistError::Task {
                key: key.unwrap_or_else(|| self.key()),
                op,
                message,
                panicked,
            }),
            JobStatus::Pending => Err(DistError::Cancelled { key: self.key() }),
        }
    }
}

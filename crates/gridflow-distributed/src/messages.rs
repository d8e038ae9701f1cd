//! The messages of the protocol (serde-encoded with postcard; see `docs/protocol.md`).
//!
//! Task ids on the wire are the scheduler's dense global ids (`u64`); task payloads are
//! opaque bytes to the scheduler (a serialized expression the workers decode).

use serde::{Deserialize, Serialize};

/// What a peer is, sent first after the preamble.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Hello {
    /// A worker joining the cluster.
    Worker {
        /// Its name (for logs and cluster information).
        name: String,
        /// Threads running tasks.
        nthreads: u32,
        /// Its memory limit in bytes (0: none).
        memory_limit: u64,
        /// Where peers and clients fetch its data (`host:port`).
        data_address: String,
    },
    /// A client submitting graphs.
    Client,
    /// A client asking the scheduler to relay its bytes to a worker's data port (its
    /// data address, as the scheduler lists it): through a gateway, workers cannot be
    /// reached directly. Answered by a [`Welcome`]; once accepted, the connection carries
    /// a data-port connection (its own handshake, then `DataRequest` / `DataReply`).
    Relay {
        /// The worker's data address.
        address: String,
    },
}

/// The scheduler's answer to a [`Hello`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Welcome {
    /// Accepted; a worker learns its id, a client where the dashboard is.
    Accepted {
        /// The worker's id (0 for a client).
        id: u32,
        /// The address the scheduler's dashboard listens on (`ip:port`; an unspecified
        /// ip such as `0.0.0.0` means every interface, so a client puts the host it
        /// connected to in its place), or `None` without a dashboard. Sent to clients
        /// only.
        dashboard: Option<String>,
    },
    /// Refused, saying why.
    Refused(String),
}

/// One task submitted by a client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitTask {
    /// The serialized expression (opaque to the scheduler).
    pub payload: Vec<u8>,
    /// Inputs by position, as ids within the job (may repeat).
    pub inputs: Vec<u32>,
}

/// The task groups of a job's tasks (Dask's key prefixes): names once, then one index
/// per task; empty: every task in one group.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskGroups {
    /// The groups' names.
    pub names: Vec<String>,
    /// Each task's group, by position in the job (indices into `names`).
    pub of_task: Vec<u32>,
}

/// Client → scheduler.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FromClient {
    /// Runs a compiled graph: tasks in priority order (id within the job = position). An
    /// input or output position `tasks.len() + k` is the result held under global id
    /// `held[k]` (a persisted result, a future's or scattered data), read by key instead of
    /// recomputed.
    Submit {
        /// The tasks.
        tasks: Vec<SubmitTask>,
        /// Ids of the results the client will gather (or hold as futures).
        outputs: Vec<u32>,
        /// Results of earlier jobs this job reads, by global id.
        held: Vec<u64>,
        /// The tasks' groups, for the dashboard.
        groups: TaskGroups,
    },
    /// The client dropped its last handle on these results (global ids): each loses the
    /// client's pin; a job with no pinned output left is forgotten (cancelled if running).
    ReleaseKeys(Vec<u64>),
    /// The client is placing data on workers itself: one result per part, `(data address
    /// of the worker, bytes)`. Answered by `Accepted { job }`; the results' global ids are
    /// `job..job + parts.len()`, pinned like a job's outputs. The client then sends the
    /// values to those workers' data ports (`DataRequest::Put`).
    Scatter {
        /// Where each value goes and its size.
        parts: Vec<(String, u64)>,
    },
    /// The client has gathered (or given up on) the job's results: forget it.
    Release {
        /// The job.
        job: u64,
    },
    /// Asks for [`ToClient::Info`].
    Info,
    /// Asks for [`ToClient::Activity`] (a gateway's idle check and adaptive scaling).
    Activity,
    /// Retires these workers (by name) gracefully: they get no new tasks, finish those
    /// they have, their results that no other worker holds are copied to workers that stay,
    /// then they are told to exit. Answered by [`ToClient::Retired`] once done.
    RetireWorkers {
        /// The workers' names.
        names: Vec<String>,
    },
    /// Asks for [`ToClient::AdaptiveTarget`].
    AdaptiveTarget,
    /// Asks again where a finished job's outputs are: the worker its `Done` named may have
    /// left before the client gathered (retired: the results moved; lost: they are
    /// recomputed). Answered by another `Done` with the current holders once every output
    /// is in memory again, or `Failed` when the job is unknown or fails meanwhile.
    Locate {
        /// The job (not yet released).
        job: u64,
    },
}

/// How many workers the pending work wants, and the figures behind the number (see
/// `Core::adaptive_target`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AdaptiveTarget {
    /// Workers wanted: the larger of `cpu` and `memory`.
    pub target: u64,
    /// Workers to finish the pending work within the target duration, bounded by the
    /// tasks ready to run.
    pub cpu: u64,
    /// Workers to hold the results in memory within their limits.
    pub memory: u64,
    /// Tasks not yet finished (waiting, queued or processing).
    pub unfinished_tasks: u64,
    /// Tasks that could run now (queued on the scheduler or processing on workers).
    pub ready_tasks: u64,
    /// Expected run time of the unfinished tasks on one thread, in seconds.
    pub expected_seconds: f64,
    /// Workers connected now.
    pub workers: u64,
}

/// Where a result is held: a task id and the data address of one worker holding it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Location {
    /// The global task id.
    pub id: u64,
    /// A holder's data address.
    pub address: String,
}

/// A worker as seen by the scheduler.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// Its data address.
    pub address: String,
    /// Threads running tasks.
    pub nthreads: u32,
    /// Memory limit in bytes (0: none).
    pub memory_limit: u64,
    /// Bytes of inputs this worker has fetched from peers so far.
    pub bytes_fetched: u64,
    /// Bytes of results held in memory (as last reported).
    pub managed_bytes: u64,
    /// Bytes of the process's memory that are not results (resident minus managed).
    pub unmanaged_bytes: u64,
    /// Bytes of results spilled to the worker's local directory.
    pub spilled_bytes: u64,
    /// Being retired: it gets no new tasks and its results are moving to other workers;
    /// it leaves the list once it has exited.
    pub retiring: bool,
}

/// Scheduler → client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToClient {
    /// The job was accepted under this id.
    Accepted {
        /// The job's id.
        job: u64,
    },
    /// Tasks finished so far.
    Progress {
        /// The job.
        job: u64,
        /// Tasks done.
        done: u64,
    },
    /// Every task finished; the outputs are held here (in the order submitted).
    Done {
        /// The job.
        job: u64,
        /// One location per requested output.
        outputs: Vec<Location>,
        /// Most bytes of results the job held at once on the cluster.
        peak_bytes: u64,
    },
    /// A task failed (or the cluster could not run the job); the job is forgotten.
    Failed {
        /// The job.
        job: u64,
        /// The failing task's id within the job, when a task failed.
        task: Option<u32>,
        /// The operation's label.
        op: String,
        /// What went wrong.
        message: String,
        /// True when the operation panicked.
        panicked: bool,
    },
    /// The cluster's workers.
    Info(Vec<WorkerInfo>),
    /// How busy the scheduler is.
    Activity(Activity),
    /// The answer to [`FromClient::RetireWorkers`]: the workers retired, and the names no
    /// connected worker has.
    Retired {
        /// Workers that retired (their results moved first when another worker could take
        /// them).
        retired: Vec<String>,
        /// Names matching no connected worker.
        unknown: Vec<String>,
    },
    /// The answer to [`FromClient::AdaptiveTarget`].
    AdaptiveTarget(AdaptiveTarget),
}

/// How busy a scheduler is: what a gateway needs to stop idle clusters and to scale them.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Activity {
    /// Milliseconds since a client last submitted or scattered or a task last finished;
    /// 0 while a job is running.
    pub idle_ms: u64,
    /// Jobs the scheduler holds (running, or finished with results held).
    pub jobs: u64,
    /// Tasks waiting on the scheduler or processing on workers.
    pub pending_tasks: u64,
}

/// A task for a worker to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComputeTask {
    /// Global id.
    pub id: u64,
    /// The serialized expression.
    pub payload: Vec<u8>,
    /// Inputs by position (global ids, may repeat).
    pub inputs: Vec<u64>,
    /// Where the inputs this worker may not hold are (one holder each).
    pub who_has: Vec<Location>,
}

/// Scheduler → worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// Tasks to run (a batch).
    Compute(Vec<ComputeTask>),
    /// Results nobody needs any more: drop them.
    Release(Vec<u64>),
    /// Work stealing: give these tasks back if they have not started (answered by
    /// [`FromWorker::StealResponse`]).
    Steal(Vec<u64>),
    /// Stop the worker process.
    Shutdown,
    /// Fetch these results from the peers holding them and keep them (a retiring worker's
    /// results moving here); answered by [`FromWorker::Replicated`].
    Replicate(Vec<Location>),
    /// The scheduler is alive (sent every heartbeat interval): a worker that hears nothing
    /// for its time-out exits.
    Heartbeat,
}

/// A finished task, as a worker reports it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TaskDone {
    /// Global id.
    pub id: u64,
    /// Bytes of the result.
    pub nbytes: u64,
    /// How long the task ran, in µs (the scheduler's estimate of task cost for stealing).
    pub micros: u64,
}

/// Worker → scheduler.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// Tasks finished (a batch).
    Finished(Vec<TaskDone>),
    /// The answer to [`ToWorker::Steal`]: for each task, true when it had not started and
    /// was dropped here (it will run elsewhere), false when it runs or ran here.
    StealResponse(Vec<(u64, bool)>),
    /// Bytes of inputs fetched from peers so far (sent when it changed).
    Metrics {
        /// The running total.
        bytes_fetched: u64,
        /// Bytes of results in memory.
        managed: u64,
        /// Bytes of results spilled to disk.
        spilled: u64,
        /// The process's resident memory.
        rss: u64,
        /// The process's CPU use over the last heartbeat interval, in percent of one core.
        cpu: f32,
    },
    /// A task failed.
    Failed {
        /// Global id.
        id: u64,
        /// The operation's label.
        op: String,
        /// What went wrong.
        message: String,
        /// True when the operation panicked.
        panicked: bool,
    },
    /// The worker is alive (sent every heartbeat interval).
    Heartbeat,
    /// Inputs of a task could not be fetched from the worker said to hold them: the
    /// scheduler stops counting on that holder for them and reschedules the task
    /// (recomputing the inputs if no other worker holds them).
    Missing {
        /// The task (global id) that was waiting for the inputs.
        id: u64,
        /// The inputs that could not be fetched.
        inputs: Vec<u64>,
        /// The data address they were fetched from.
        holder: String,
        /// Why the fetch failed.
        message: String,
    },
    /// The answer to [`ToWorker::Replicate`]: results now held here, and those that could
    /// not be fetched.
    Replicated {
        /// Now held here.
        ids: Vec<u64>,
        /// Not fetched (the holder is gone or no longer has them).
        failed: Vec<u64>,
    },
    /// Tasks a thread started running (so that a worker's death blames the tasks it was
    /// really running, not those queued behind them).
    Started(Vec<u64>),
    /// The worker is short of memory (process memory above its pause threshold) and starts
    /// no new task, handing back those queued and not started; or it is no longer.
    Paused {
        /// Paused (true) or resumed (false).
        paused: bool,
        /// Tasks handed back to be scheduled elsewhere.
        returned: Vec<u64>,
    },
}

/// Client or worker → a worker's data port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DataRequest {
    /// Sends these results, one [`DataReply`] frame each, in order.
    Get(Vec<u64>),
    /// Stores a value under a global id (scattered data): its header here, its body as
    /// the frame's payload. Answered by [`DataReply::Stored`].
    Put {
        /// Global id.
        id: u64,
        /// The value's header ([`gridflow_runtime::WireValue::write_header`]).
        header: Vec<u8>,
    },
}

/// A worker's data port → the requester; a `Value` frame carries the value's body as its
/// raw payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DataReply {
    /// The value of a task: its header here, its body as the frame's payload.
    Value {
        /// Global id.
        id: u64,
        /// The value's header ([`gridflow_runtime::WireValue::write_header`]).
        header: Vec<u8>,
    },
    /// This worker does not hold the task's result.
    Missing {
        /// Global id.
        id: u64,
    },
    /// A `Put` value was stored.
    Stored {
        /// Global id.
        id: u64,
    },
    /// A `Put` value could not be decoded.
    Refused {
        /// Global id.
        id: u64,
        /// Why.
        message: String,
    },
}

//! The gateway's state in SQLite, so that clusters outlive a gateway restart: one row per
//! running cluster (its owner, processes, addresses, options, token hash, last activity).

use crate::config::ClusterSpec;
use crate::{GatewayError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One worker process a cluster started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WorkerRecord {
    /// Its name (as the scheduler lists it once joined).
    pub name: String,
    /// Its process id (on the gateway's machine, or on `host` over SSH; 0 for a batch
    /// job or a pod).
    pub pid: u32,
    /// Why it is gone, once seen dead.
    pub failed: Option<String>,
    /// The backend's handle on it: a Slurm job id, a pod's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The host it runs on (SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Unix time it was asked for.
    #[serde(default)]
    pub asked: f64,
}

/// A cluster as the gateway keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClusterRecord {
    /// Its id (random, also the routing key).
    pub id: String,
    /// The user who made it.
    pub owner: String,
    /// Workers, threads, memory, backend options.
    pub spec: ClusterSpec,
    /// The scheduler's own address (reached only through the gateway).
    pub scheduler_address: String,
    /// The scheduler's process id.
    pub scheduler_pid: u32,
    /// The scheduler's dashboard (`host:port` on loopback), if it serves one.
    #[serde(default)]
    pub dashboard: Option<String>,
    /// The worker processes started, failed ones included.
    pub workers: Vec<WorkerRecord>,
    /// Adaptive bounds (minimum, maximum), when adapting.
    pub adapt: Option<(usize, usize)>,
    /// SHA-256 (hex) of the cluster's token (the token itself is in a 0600 file).
    pub token_sha256: String,
    /// Unix time of creation.
    pub created: f64,
    /// Unix time of the last computation seen.
    pub last_activity: f64,
    /// Workers started so far (names are numbered by it).
    pub started: usize,
    /// The backend its workers run on (`local`, `slurm`, `ssh`, `kubernetes`).
    #[serde(default = "local_kind")]
    pub backend: String,
}

fn local_kind() -> String {
    "local".into()
}

/// The state database.
pub struct Db {
    conn: rusqlite::Connection,
}

impl Db {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = rusqlite::Connection::open(path)
            .map_err(GatewayError::db(format!("opening {}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS clusters (
                 id TEXT PRIMARY KEY,
                 owner TEXT NOT NULL,
                 record TEXT NOT NULL
             );",
        )
        .map_err(GatewayError::db("creating the tables"))?;
        Ok(Db { conn })
    }

    /// Inserts or replaces a cluster's row.
    pub fn put(&self, c: &ClusterRecord) -> Result<()> {
        let json = serde_json::to_string(c).map_err(|source| GatewayError::Json {
            what: format!("encoding cluster {}", c.id),
            source,
        })?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO clusters (id, owner, record) VALUES (?1, ?2, ?3)",
                (&c.id, &c.owner, &json),
            )
            .map_err(GatewayError::db(format!("saving cluster {}", c.id)))?;
        Ok(())
    }

    /// Removes a cluster's row.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM clusters WHERE id = ?1", [id])
            .map_err(GatewayError::db(format!("removing cluster {id}")))?;
        Ok(())
    }

    /// Every cluster recorded.
    pub fn all(&self) -> Result<Vec<ClusterRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT id, record FROM clusters ORDER BY id")
            .map_err(GatewayError::db("reading the clusters"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(GatewayError::db("reading the clusters"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(GatewayError::db("reading the clusters"))?;
            out.push(
                serde_json::from_str(&json).map_err(|source| GatewayError::Json {
                    what: format!("decoding cluster {id} from the state database"),
                    source,
                })?,
            );
        }
        Ok(out)
    }
}

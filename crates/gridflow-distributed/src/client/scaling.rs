//! The client's side of scaling: retiring workers and asking for the adaptive target.

use super::{Client, send};
use crate::messages::{AdaptiveTarget, FromClient, ToClient};
use crate::{DistError, Result};

impl Client {
    /// Retires the workers named `names` gracefully and returns once they have exited: they
    /// get no new tasks, finish those they have, and the results only they hold are copied
    /// to the workers that stay (recomputed later if no worker stays). A name that matches
    /// no connected worker is an error naming it (the others are still retired). Blocks
    /// this client's other calls meanwhile.
    pub fn retire_workers(&self, names: &[String]) -> Result<Vec<String>> {
        let (retired, unknown) = self.inner.with_conn(|inner, c| {
            inner.block_on_timed("retiring workers", async {
                send(
                    c,
                    &inner.address,
                    &FromClient::RetireWorkers {
                        names: names.to_vec(),
                    },
                )
                .await?;
                loop {
                    if let ToClient::Retired { retired, unknown } = inner.recv(c).await? {
                        return Ok((retired, unknown));
                    }
                }
            })
        })?;
        if !unknown.is_empty() {
            return Err(DistError::Cluster(format!(
                "retire_workers: no connected worker is named {} (retired: {})",
                unknown.join(", "),
                if retired.is_empty() {
                    "none".into()
                } else {
                    retired.join(", ")
                }
            )));
        }
        Ok(retired)
    }

    /// How many workers the work pending on the scheduler wants, and why (see
    /// [`AdaptiveTarget`]).
    pub fn adaptive_target(&self) -> Result<AdaptiveTarget> {
        self.inner.with_conn(|inner, c| {
            inner.block_on_timed("asking for the adaptive target", async {
                send(c, &inner.address, &FromClient::AdaptiveTarget).await?;
                loop {
                    if let ToClient::AdaptiveTarget(t) = inner.recv(c).await? {
                        return Ok(t);
                    }
                }
            })
        })
    }
}

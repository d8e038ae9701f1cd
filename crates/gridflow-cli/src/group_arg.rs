//! `--group PATH` of `info` and `eval --store`: one group of a netCDF file (or of a Zarr
//! store), as xarray's `open_dataset(..., group=PATH)`.

use anyhow::{Result, bail};

/// The group to open instead of the root.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct GroupArg {
    /// Open this group of the netCDF file (or Zarr store) instead of the root: `forecast`,
    /// `forecast/member1` (xarray's group=). An unknown group is an error naming it (and,
    /// for netCDF, listing the file's groups).
    #[arg(long, value_name = "PATH")]
    pub group: Option<String>,
}

impl GroupArg {
    /// Dataset open options with the limits, the storage options and this group.
    pub fn open_options(
        &self,
        storage: &crate::common::StorageArgs,
    ) -> Result<gridflow_dataset::OpenOptions> {
        let mut o = crate::common::open_options(storage)?;
        if let Some(g) = &self.group {
            if g.trim().is_empty() {
                bail!("--group: empty group path (use / for the root)");
            }
            // "/" is the root, as in netCDF
            o.group = g.trim_matches('/').to_owned();
        }
        Ok(o)
    }

    /// Refuses `--group` where the data does not come from `--store` (a catalog's datasets
    /// are opened as its assets say).
    pub fn refuse_for(&self, source: &str) -> Result<()> {
        if self.group.is_some() {
            bail!("--group applies to --store (one file or store), not to {source}");
        }
        Ok(())
    }
}

//! Group and array metadata: consolidated `.zmetadata` (v2), inline `consolidated_metadata`
//! (v3), and the fallback that lists the store and reads each node's metadata.

use crate::error::{Result, StoreError};
use crate::storage::{CappedError, Storage};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use zarrs::storage::StoreKey;

/// The Zarr format version of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ZarrFormat {
    /// Zarr v2 (`.zarray`, `.zattrs`, `.zgroup`, `.zmetadata`).
    V2,
    /// Zarr v3 (`zarr.json`).
    V3,
}

/// The raw metadata of one array, as read from the store (or from consolidated metadata).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ArrayEntry {
    /// The format.
    pub format: ZarrFormat,
    /// `.zarray` (v2) or `zarr.json` (v3) as JSON.
    pub meta: Value,
    /// `.zattrs` (v2 only; v3 keeps attributes inside `meta`).
    pub attrs: Map<String, Value>,
}

/// Everything known about a group after opening it.
#[derive(Clone, Debug)]
pub(crate) struct GroupMeta {
    pub format: ZarrFormat,
    pub attrs: Map<String, Value>,
    pub consolidated: bool,
    /// Arrays by path relative to the group.
    pub arrays: BTreeMap<String, ArrayEntry>,
    /// Sub-groups by path relative to the group, with their attributes.
    pub groups: BTreeMap<String, Map<String, Value>>,
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        name.to_owned()
    } else {
        format!("{p}/{name}")
    }
}

/// Reads and parses a JSON document; `Ok(None)` if absent.
pub(crate) fn get_json(storage: &Storage, path: &str, key: &str) -> Result<Option<Value>> {
    let meta_err = |detail: String| StoreError::Metadata {
        url: storage.url().to_owned(),
        path: path.to_owned(),
        detail,
    };
    let k = StoreKey::new(key).map_err(|e| meta_err(format!("bad key {key:?}: {e}")))?;
    let bytes = storage
        .get_capped(&k, storage.max_metadata_bytes())
        .map_err(|e| match e {
            CappedError::TooLarge { size, limit } => StoreError::TooLarge {
                url: storage.url().to_owned(),
                key: key.to_owned(),
                size,
                limit,
            },
            CappedError::NotRegular { path } => StoreError::NotRegularFile {
                url: storage.url().to_owned(),
                path: path.display().to_string(),
            },
            CappedError::Storage(e) => StoreError::Storage {
                url: storage.url().to_owned(),
                detail: format!("reading {key}: {e}"),
            },
        })?;
    match bytes {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| meta_err(format!("{key} is not valid JSON: {e}"))),
    }
}

fn as_map(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Opens the group at `path` (`""` for the root).
pub(crate) fn open_group(storage: &Storage, path: &str) -> Result<GroupMeta> {
    let url = storage.url().to_owned();
    let meta_err = |detail: String| StoreError::Metadata {
        url: url.clone(),
        path: path.to_owned(),
        detail,
    };
    // v2 consolidated: one request for everything
    if let Some(z) = get_json(storage, path, &join(path, ".zmetadata"))? {
        let md = z
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| meta_err(".zmetadata has no \"metadata\" object".into()))?;
        let mut g = GroupMeta {
            format: ZarrFormat::V2,
            attrs: as_map(md.get(".zattrs").cloned()),
            consolidated: true,
            arrays: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for (k, v) in md {
            if let Some(p) = k.strip_suffix("/.zarray") {
                g.arrays.insert(
                    p.to_owned(),
                    ArrayEntry {
                        format: ZarrFormat::V2,
                        meta: v.clone(),
                        attrs: as_map(md.get(&format!("{p}/.zattrs")).cloned()),
                    },
                );
            } else if let Some(p) = k.strip_suffix("/.zgroup") {
                g.groups.insert(
                    p.to_owned(),
                    as_map(md.get(&format!("{p}/.zattrs")).cloned()),
                );
            }
        }
        return Ok(g);
    }
    // v3 group (possibly with inline consolidated metadata)
    if let Some(z) = get_json(storage, path, &join(path, "zarr.json"))? {
        if z.get("node_type").and_then(Value::as_str) != Some("group") {
            return Err(StoreError::NotFound {
                url,
                what: "group",
                path: path.to_owned(),
            });
        }
        let mut g = GroupMeta {
            format: ZarrFormat::V3,
            attrs: as_map(z.get("attributes").cloned()),
            consolidated: false,
            arrays: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        if let Some(md) = z
            .get("consolidated_metadata")
            .and_then(|c| c.get("metadata"))
            .and_then(Value::as_object)
        {
            g.consolidated = true;
            for (k, v) in md {
                match v.get("node_type").and_then(Value::as_str) {
                    Some("array") => {
                        g.arrays.insert(
                            k.clone(),
                            ArrayEntry {
                                format: ZarrFormat::V3,
                                meta: v.clone(),
                                attrs: Map::new(),
                            },
                        );
                    }
                    Some("group") => {
                        g.groups
                            .insert(k.clone(), as_map(v.get("attributes").cloned()));
                    }
                    _ => {
                        return Err(meta_err(format!(
                            "consolidated node {k:?} has no node_type"
                        )));
                    }
                }
            }
            return Ok(g);
        }
        walk(storage, path, "", ZarrFormat::V3, &mut g)?;
        return Ok(g);
    }
    // v2 without consolidated metadata
    if let Some(zg) = get_json(storage, path, &join(path, ".zgroup"))? {
        let _ = zg;
        let mut g = GroupMeta {
            format: ZarrFormat::V2,
            attrs: as_map(get_json(storage, path, &join(path, ".zattrs"))?),
            consolidated: false,
            arrays: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        walk(storage, path, "", ZarrFormat::V2, &mut g)?;
        return Ok(g);
    }
    Err(StoreError::NotFound {
        url,
        what: "group",
        path: path.to_owned(),
    })
}

/// Lists the children of `root/rel` and reads each child's metadata, recursing into groups.
fn walk(
    storage: &Storage,
    root: &str,
    rel: &str,
    format: ZarrFormat,
    g: &mut GroupMeta,
) -> Result<()> {
    let dir = join(root, rel);
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let (_, dirs) = storage.list_dir(&prefix).map_err(|e| StoreError::Storage {
        url: storage.url().to_owned(),
        detail: format!("listing {prefix:?}: {e}"),
    })?;
    for d in dirs {
        let name = d
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let child_rel = join(rel, &name);
        let child = join(root, &child_rel);
        match format {
            ZarrFormat::V2 => {
                if let Some(meta) = get_json(storage, &child, &join(&child, ".zarray"))? {
                    let attrs = as_map(get_json(storage, &child, &join(&child, ".zattrs"))?);
                    g.arrays.insert(
                        child_rel,
                        ArrayEntry {
                            format,
                            meta,
                            attrs,
                        },
                    );
                } else if get_json(storage, &child, &join(&child, ".zgroup"))?.is_some() {
                    let attrs = as_map(get_json(storage, &child, &join(&child, ".zattrs"))?);
                    g.groups.insert(child_rel.clone(), attrs);
                    walk(storage, root, &child_rel, format, g)?;
                }
            }
            ZarrFormat::V3 => {
                if let Some(meta) = get_json(storage, &child, &join(&child, "zarr.json"))? {
                    match meta.get("node_type").and_then(Value::as_str) {
                        Some("array") => {
                            g.arrays.insert(
                                child_rel,
                                ArrayEntry {
                                    format,
                                    meta,
                                    attrs: Map::new(),
                                },
                            );
                        }
                        Some("group") => {
                            g.groups
                                .insert(child_rel.clone(), as_map(meta.get("attributes").cloned()));
                            walk(storage, root, &child_rel, format, g)?;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads one array's metadata directly (v2 `.zarray` + `.zattrs`, else v3 `zarr.json`).
pub(crate) fn read_array_entry(storage: &Storage, path: &str) -> Result<ArrayEntry> {
    if let Some(meta) = get_json(storage, path, &join(path, ".zarray"))? {
        let attrs = as_map(get_json(storage, path, &join(path, ".zattrs"))?);
        return Ok(ArrayEntry {
            format: ZarrFormat::V2,
            meta,
            attrs,
        });
    }
    if let Some(meta) = get_json(storage, path, &join(path, "zarr.json"))?
        && meta.get("node_type").and_then(Value::as_str) == Some("array")
    {
        return Ok(ArrayEntry {
            format: ZarrFormat::V3,
            meta,
            attrs: Map::new(),
        });
    }
    Err(StoreError::NotFound {
        url: storage.url().to_owned(),
        what: "array",
        path: path.to_owned(),
    })
}

/// Scans a v2 hierarchy below `path` without using `.zmetadata` (for re-consolidating).
pub(crate) fn scan_v2(storage: &Storage, path: &str) -> Result<GroupMeta> {
    let mut g = GroupMeta {
        format: ZarrFormat::V2,
        attrs: as_map(get_json(storage, path, &join(path, ".zattrs"))?),
        consolidated: false,
        arrays: BTreeMap::new(),
        groups: BTreeMap::new(),
    };
    walk(storage, path, "", ZarrFormat::V2, &mut g)?;
    Ok(g)
}

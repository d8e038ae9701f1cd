//! String arrays (labels such as `member_id`, `region`, a 0-d `note`), read whole: v2 `<U{n}`
//! (NumPy's fixed-length UTF-32, xarray's default), v2 `|O` with the `vlen-utf8` filter, and
//! v3 `string` and `fixed_length_utf32`.

use crate::array::ZarrGroup;
use crate::error::{Result, StoreError};
use crate::metadata::{self, ArrayEntry, ZarrFormat};
use serde_json::{Map, Value};
use zarrs::array::{Array, ArrayMetadata, ArrayMetadataV2, ArrayMetadataV3};

/// Most string elements read at once: labels and small variables, never data-sized arrays.
pub const MAX_STRING_ELEMENTS: u64 = 10_000_000;

/// A string array read whole.
#[derive(Clone, Debug, PartialEq)]
pub struct StringArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values in row-major order (fixed-length ones without their trailing NULs).
    pub values: Vec<String>,
    /// Dimension names (v2 `_ARRAY_DIMENSIONS`, v3 `dimension_names`), when stored.
    pub dims: Option<Vec<String>>,
    /// Attributes.
    pub attrs: Map<String, Value>,
}

/// Whether the metadata describes a string array gridflow reads with [`ZarrGroup::string_array`].
pub fn is_string_entry(entry: &ArrayEntry) -> bool {
    match entry.format {
        ZarrFormat::V2 => {
            let dtype = entry
                .meta
                .get("dtype")
                .and_then(Value::as_str)
                .unwrap_or("");
            let body = dtype.trim_start_matches(['<', '>', '|', '=']);
            body.starts_with('U') && body[1..].parse::<u32>().is_ok()
                || body == "O" && has_vlen_utf8_filter(&entry.meta)
        }
        ZarrFormat::V3 => match entry.meta.get("data_type") {
            Some(Value::String(s)) => s == "string",
            Some(Value::Object(o)) => {
                o.get("name").and_then(Value::as_str) == Some("fixed_length_utf32")
            }
            _ => false,
        },
    }
}

fn has_vlen_utf8_filter(meta: &Value) -> bool {
    meta.get("filters")
        .and_then(Value::as_array)
        .is_some_and(|f| {
            f.iter()
                .any(|x| x.get("id").and_then(Value::as_str) == Some("vlen-utf8"))
        })
}

impl ZarrGroup {
    /// Whether the array at `path` holds strings (read them with [`ZarrGroup::string_array`]).
    pub fn is_string_array(&self, path: &str) -> bool {
        self.entry(path).is_some_and(is_string_entry)
    }

    /// Reads the string array at `path` (relative to this group) whole.
    ///
    /// Errors: no such array, not a string array, more than [`MAX_STRING_ELEMENTS`]
    /// elements, and any read or decode failure, each naming the array.
    pub fn string_array(&self, path: &str) -> Result<StringArray> {
        let url = self.store().url_string();
        let full = metadata::join(self.path(), path.trim_matches('/'));
        let entry = self.entry(path).ok_or_else(|| StoreError::NotFound {
            url: url.clone(),
            what: "array",
            path: full.clone(),
        })?;
        let meta_err = |detail: String| StoreError::Metadata {
            url: url.clone(),
            path: full.clone(),
            detail,
        };
        if !is_string_entry(entry) {
            return Err(meta_err("not a string array".into()));
        }
        let mut attrs = entry.attrs.clone();
        let md = match entry.format {
            ZarrFormat::V2 => {
                let mut meta = entry.meta.clone();
                // xarray writes `fill_value: null` for strings, which zarrs does not take;
                // whole reads never use it
                if meta.get("fill_value").is_none_or(Value::is_null)
                    && let Some(m) = meta.as_object_mut()
                {
                    m.insert("fill_value".into(), Value::String(String::new()));
                }
                let mut v2: ArrayMetadataV2 =
                    serde_json::from_value(meta).map_err(|e| meta_err(format!(".zarray: {e}")))?;
                v2.attributes = attrs.clone();
                ArrayMetadata::V2(v2)
            }
            ZarrFormat::V3 => {
                let v3: ArrayMetadataV3 = serde_json::from_value(entry.meta.clone())
                    .map_err(|e| meta_err(format!("zarr.json: {e}")))?;
                attrs = v3.attributes.clone();
                ArrayMetadata::V3(v3)
            }
        };
        let array =
            Array::new_with_metadata(self.store().storage().clone(), &format!("/{full}"), md)
                .map_err(|e| meta_err(e.to_string()))?;
        let n = array
            .shape()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= MAX_STRING_ELEMENTS)
            .ok_or_else(|| {
                meta_err(format!(
                    "a string array of shape {:?} is larger than the {MAX_STRING_ELEMENTS} elements gridflow reads as labels",
                    array.shape()
                ))
            })?;
        let shape: Vec<usize> = array
            .shape()
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| meta_err(format!("dimension {d} is too large")))
            })
            .collect::<Result<_>>()?;
        let read_err = |e: zarrs::array::ArrayError| StoreError::Metadata {
            url: url.clone(),
            path: full.clone(),
            detail: format!("reading the strings: {e}"),
        };
        let subset = array.subset_all();
        let fixed = matches!(entry.format, ZarrFormat::V2)
            && !entry
                .meta
                .get("dtype")
                .and_then(Value::as_str)
                .unwrap_or("")
                .ends_with('O')
            || entry.meta.get("data_type").is_some_and(Value::is_object);
        let values: Vec<String> = if n == 0 {
            Vec::new()
        } else if fixed {
            array
                .retrieve_array_subset::<Vec<Vec<char>>>(&subset)
                .map_err(read_err)?
                .into_iter()
                .map(|chars| chars.into_iter().collect())
                .collect()
        } else {
            array
                .retrieve_array_subset::<Vec<String>>(&subset)
                .map_err(read_err)?
        };
        let dims = match entry.format {
            ZarrFormat::V2 => match attrs.remove("_ARRAY_DIMENSIONS") {
                Some(Value::Array(v)) => Some(
                    v.iter()
                        .enumerate()
                        .map(|(i, d)| d.as_str().map_or_else(|| format!("dim_{i}"), str::to_owned))
                        .collect(),
                ),
                _ => None,
            },
            ZarrFormat::V3 => entry
                .meta
                .get("dimension_names")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, d)| d.as_str().map_or_else(|| format!("dim_{i}"), str::to_owned))
                        .collect()
                }),
        };
        Ok(StringArray {
            shape,
            values,
            dims,
            attrs,
        })
    }
}

/// Writes a string array whole, as one chunk, the way xarray writes Python strings: v2
/// `|O` with the `vlen-utf8` filter, v3 `string` (variable-length UTF-8 both), with
/// `dims` as `_ARRAY_DIMENSIONS` (v2) or `dimension_names` (v3). Groups above `path` must
/// exist (write the numeric arrays or the group attributes first, or call
/// [`crate::write_group_attrs`]).
pub fn write_string_array(
    store: &crate::ZarrStore,
    path: &str,
    format: ZarrFormat,
    dims: &[String],
    shape: &[usize],
    values: &[String],
    attrs: &Map<String, Value>,
) -> Result<()> {
    let url = store.url_string();
    let path = path.trim_matches('/');
    let err = |key: &str, detail: String| StoreError::Write {
        url: url.clone(),
        path: path.to_owned(),
        key: key.to_owned(),
        detail,
    };
    if store.is_read_only() {
        return Err(StoreError::ReadOnly { url });
    }
    if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(values.len())
        || dims.len() != shape.len()
    {
        return Err(err(
            path,
            format!(
                "{} values and {} dimension names for shape {shape:?}",
                values.len(),
                dims.len()
            ),
        ));
    }
    let chunks: Vec<usize> = shape.iter().map(|&d| d.max(1)).collect();
    let (key, meta) = match format {
        ZarrFormat::V2 => {
            let mut a = attrs.clone();
            a.insert("_ARRAY_DIMENSIONS".into(), serde_json::json!(dims));
            let zattrs =
                serde_json::to_vec_pretty(&a).map_err(|e| err(".zattrs", e.to_string()))?;
            put(store, &metadata::join(path, ".zattrs"), zattrs)?;
            (
                metadata::join(path, ".zarray"),
                serde_json::json!({
                    "shape": shape, "chunks": chunks, "dtype": "|O", "fill_value": null,
                    "order": "C", "filters": [{"id": "vlen-utf8"}], "dimension_separator": ".",
                    "compressor": null, "zarr_format": 2
                }),
            )
        }
        ZarrFormat::V3 => (
            metadata::join(path, "zarr.json"),
            serde_json::json!({
                "shape": shape, "data_type": "string",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": "", "codecs": [{"name": "vlen-utf8"}], "attributes": attrs,
                "zarr_format": 3, "node_type": "array", "storage_transformers": [],
                "dimension_names": dims
            }),
        ),
    };
    let body = serde_json::to_vec_pretty(&meta).map_err(|e| err(&key, e.to_string()))?;
    let md = match format {
        ZarrFormat::V2 => {
            let mut m = meta.clone();
            if let Some(o) = m.as_object_mut() {
                o.insert("fill_value".into(), Value::String(String::new()));
            }
            ArrayMetadata::V2(serde_json::from_value(m).map_err(|e| err(&key, e.to_string()))?)
        }
        ZarrFormat::V3 => {
            ArrayMetadata::V3(serde_json::from_value(meta).map_err(|e| err(&key, e.to_string()))?)
        }
    };
    let array = Array::new_with_metadata(store.storage().clone(), &format!("/{path}"), md)
        .map_err(|e| err(&key, e.to_string()))?;
    if !values.is_empty() {
        let origin = vec![0u64; shape.len()];
        array
            .store_chunk(&origin, values.to_vec())
            .map_err(|e| err(path, format!("storing the strings: {e}")))?;
    }
    // metadata last: an interrupted write leaves no array that opens half-written
    put(store, &key, body)
}

fn put(store: &crate::ZarrStore, key: &str, bytes: Vec<u8>) -> Result<()> {
    use zarrs::storage::{StoreKey, WritableStorageTraits};
    let werr = |detail: String| StoreError::Write {
        url: store.url_string(),
        path: String::new(),
        key: key.to_owned(),
        detail,
    };
    let k = StoreKey::new(key).map_err(|e| werr(e.to_string()))?;
    store
        .storage()
        .set(&k, bytes.into())
        .map_err(|e| werr(e.to_string()))
}

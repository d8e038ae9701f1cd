//! Whole-file reads (catalog JSON, CSV) from the places stores live: local paths, `file://`,
//! `http(s)://`, `s3://`, `gs://` and `az://` (`abfs[s]://`).

use crate::error::{Result, StoreError};
use crate::storage::{CappedError, Storage, StoreOptions, StoreUrl};
use zarrs::storage::StoreKey;

/// The URL schemes read over the network.
const REMOTE_SCHEMES: [&str; 7] = ["http", "https", "s3", "gs", "az", "abfs", "abfss"];

/// Reads a whole file into memory.
///
/// * a plain path (relative to the working directory) or a `file:///abs/path` URL: read from
///   disk;
/// * `http://` / `https://`: one GET (with the retries and time-outs of `options`);
/// * `s3://bucket/key`: one GET through the S3 API (`options` gives endpoint, region,
///   anonymous access...);
/// * `gs://bucket/key`, `az://container/key`: one GET through the Google Cloud Storage or
///   Azure Blob API, unsigned when no credentials are found (public buckets, such as
///   Pangeo's CMIP6 one).
///
/// URLs with a query string are not supported. A missing file is a
/// [`StoreError::NotFound`] naming the directory URL and the file name.
///
/// ```no_run
/// use gridflow_store::{fetch::read_bytes, StoreOptions};
/// let json = read_bytes("https://storage.googleapis.com/cmip6/pangeo-cmip6.json",
///                       &StoreOptions::read_only())?;
/// # Ok::<(), gridflow_store::StoreError>(())
/// ```
pub fn read_bytes(url: &str, options: &StoreOptions) -> Result<Vec<u8>> {
    read_bytes_capped(url, options, u64::MAX)
}

/// [`read_bytes`] of a file of at most `limit` bytes: a bigger one is a
/// [`StoreError::TooLarge`], decided before its content is read where the size is known
/// (local files, `Content-Length`) and after at most `limit + 1` bytes otherwise (chunked
/// HTTP bodies). Local paths that are not regular files (a FIFO would block) are refused
/// without being opened.
pub fn read_bytes_capped(url: &str, options: &StoreOptions, limit: u64) -> Result<Vec<u8>> {
    let remote = REMOTE_SCHEMES
        .iter()
        .any(|s| url.strip_prefix(s).is_some_and(|r| r.starts_with("://")));
    if !remote {
        return read_local(url, limit);
    }
    let bad = |detail: &str| StoreError::Url {
        url: url.to_owned(),
        detail: detail.to_owned(),
    };
    if url.contains('?') {
        return Err(bad("query strings are not supported"));
    }
    let (dir, name) = url
        .rsplit_once('/')
        .filter(|(d, n)| !n.is_empty() && !d.ends_with('/'))
        .ok_or_else(|| bad("the URL names no file"))?;
    let dir_url = StoreUrl::parse(dir)?;
    let storage = Storage::new(&dir_url, options)?;
    let key = StoreKey::new(name).map_err(|e| bad(&e.to_string()))?;
    match storage.get_capped(&key, limit) {
        Ok(Some(bytes)) => Ok(bytes.to_vec()),
        Ok(None) => Err(StoreError::NotFound {
            url: dir_url.to_string(),
            what: "file",
            path: name.to_owned(),
        }),
        Err(CappedError::TooLarge { size, limit }) => Err(StoreError::TooLarge {
            url: dir_url.to_string(),
            key: name.to_owned(),
            size,
            limit,
        }),
        Err(CappedError::NotRegular { path }) => Err(StoreError::NotRegularFile {
            url: dir_url.to_string(),
            path: path.display().to_string(),
        }),
        Err(CappedError::Storage(e)) => Err(StoreError::Storage {
            url: url.to_owned(),
            detail: e.to_string(),
        }),
    }
}

fn read_local(url: &str, limit: u64) -> Result<Vec<u8>> {
    let path = match url.strip_prefix("file://") {
        Some(p) if p.starts_with('/') => p,
        Some(_) => {
            return Err(StoreError::Url {
                url: url.to_owned(),
                detail: "file:// URLs must hold an absolute path (file:///...)".to_owned(),
            });
        }
        None if url.contains("://") => {
            return Err(StoreError::Url {
                url: url.to_owned(),
                detail: "unsupported scheme (use a path, file://, http(s)://, s3://, gs://, az://, abfs:// or abfss://)"
                    .to_owned(),
            });
        }
        None => url,
    };
    let shown = std::path::absolute(path).unwrap_or_else(|_| std::path::PathBuf::from(path));
    let io = |source: std::io::Error| StoreError::Io {
        op: "reading",
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(StoreError::NotRegularFile {
            url: shown.display().to_string(),
            path: shown.display().to_string(),
        });
    }
    let too_large = |size: u64| StoreError::TooLarge {
        url: shown
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        key: shown
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    // the file may have grown since: read at most one byte past the cap
    let mut buf = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, limit.saturating_add(1)),
        &mut buf,
    )
    .map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_local_files_and_names_missing_ones() {
        let dir = std::env::temp_dir().join(format!("gridflow-fetch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.json");
        std::fs::write(&file, b"{}").unwrap();
        let opts = StoreOptions::read_only();
        assert_eq!(read_bytes(file.to_str().unwrap(), &opts).unwrap(), b"{}");
        let url = format!("file://{}", file.display());
        assert_eq!(read_bytes(&url, &opts).unwrap(), b"{}");
        let missing = dir.join("missing.json");
        let err = read_bytes(missing.to_str().unwrap(), &opts).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{err}"
        );
        assert!(err.to_string().contains("missing.json"), "{err}");
        // the cap, and special files
        std::fs::write(&file, vec![b' '; 100]).unwrap();
        let err = read_bytes_capped(file.to_str().unwrap(), &opts, 99).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::TooLarge {
                    size: 100,
                    limit: 99,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            read_bytes_capped(file.to_str().unwrap(), &opts, 100)
                .unwrap()
                .len(),
            100
        );
        let err = read_bytes(dir.to_str().unwrap(), &opts).unwrap_err();
        assert!(matches!(err, StoreError::NotRegularFile { .. }), "{err}");
        let err = read_bytes("ftp://host/x.json", &opts).unwrap_err();
        assert!(err.to_string().contains("unsupported scheme"), "{err}");
        let err = read_bytes("https://host/dir/", &opts).unwrap_err();
        assert!(err.to_string().contains("names no file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

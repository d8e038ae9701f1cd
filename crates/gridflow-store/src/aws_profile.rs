//! Named AWS profiles: the keys of `~/.aws/credentials` and the region (and endpoint) of
//! `~/.aws/config`, as the AWS tools read them (`AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_CONFIG_FILE` move the files). `object_store` reads only environment variables.

use std::path::PathBuf;

/// What a profile sets.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The `key = value` lines of section `[section]` of an INI text, or `None` if it has no
/// such section.
fn section(text: &str, wanted: &str) -> Option<Vec<(String, String)>> {
    let mut found = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == wanted;
            if inside {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if inside
            && let Some((k, v)) = line.split_once('=')
            && let Some(entries) = found.as_mut()
        {
            entries.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    found
}

fn file(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(default)),
    }
}

/// Parses profile `name` from the two files' texts (either may be absent).
fn parse(name: &str, credentials: Option<&str>, config: Option<&str>) -> Option<Profile> {
    let creds = credentials.and_then(|t| section(t, name));
    // `config` names non-default profiles `[profile NAME]`
    let conf =
        config.and_then(|t| section(t, &format!("profile {name}")).or_else(|| section(t, name)));
    if creds.is_none() && conf.is_none() {
        return None;
    }
    let mut p = Profile::default();
    for (k, v) in conf
        .into_iter()
        .flatten()
        .chain(creds.into_iter().flatten())
    {
        let slot = match k.as_str() {
            "aws_access_key_id" => &mut p.access_key_id,
            "aws_secret_access_key" => &mut p.secret_access_key,
            "aws_session_token" => &mut p.session_token,
            "region" => &mut p.region,
            "endpoint_url" => &mut p.endpoint_url,
            _ => continue,
        };
        *slot = Some(v);
    }
    Some(p)
}

/// Loads profile `name`; an error names the files looked in when neither has it.
pub(crate) fn load(name: &str) -> Result<Profile, String> {
    let cred_file = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let conf_file = file("AWS_CONFIG_FILE", ".aws/config");
    let read = |f: &Option<PathBuf>| f.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    parse(
        name,
        read(&cred_file).as_deref(),
        read(&conf_file).as_deref(),
    )
    .ok_or_else(|| {
        let shown = |f: &Option<PathBuf>| {
            f.as_ref()
                .map_or_else(|| "(no HOME)".to_owned(), |p| p.display().to_string())
        };
        format!(
            "AWS profile {name:?} is in neither {} nor {}",
            shown(&cred_file),
            shown(&conf_file)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_from_credentials_and_config() {
        let creds = "[default]\naws_access_key_id = A\n\n[cmip]\naws_access_key_id=B\naws_secret_access_key = S\n# c\n";
        let config = "[default]\nregion=us-east-1\n[profile cmip]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:9\n";
        let p = parse("cmip", Some(creds), Some(config)).unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("B"));
        assert_eq!(p.secret_access_key.as_deref(), Some("S"));
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
        let d = parse("default", Some(creds), Some(config)).unwrap();
        assert_eq!(d.access_key_id.as_deref(), Some("A"));
        assert_eq!(d.region.as_deref(), Some("us-east-1"));
        assert_eq!(parse("other", Some(creds), Some(config)), None);
        assert_eq!(parse("cmip", None, None), None);
    }
}

//! The credentials and region an S3 store is reached with, found the way the AWS tools find
//! them: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` first; otherwise
//! the profile `AWS_PROFILE` (default `default`) of the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) and then of the config file
//! (`AWS_CONFIG_FILE`, default `~/.aws/config`, where profiles are `[profile NAME]`). The
//! region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`.

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::error::CredentialsError;

/// Keys for signing requests, and the region they are signed for.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
    /// A session token (temporary credentials), if any.
    pub session_token: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Where the keys came from, for messages (`environment`, or a file and profile).
    pub source: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The keys of one INI section.
type Section = Vec<(String, String)>;

/// The section `name` of an INI text (AWS's dialect: `[name]`, `key = value`, `#` and `;`
/// comments, keys case-insensitive).
fn section(text: &str, name: &str) -> Option<Section> {
    let mut found: Option<Section> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = head.trim() == name;
            if inside {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            let sec = found.get_or_insert_with(Vec::new);
            sec.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    found
}

fn get<'a>(sec: &'a Section, key: &str) -> Option<&'a str> {
    sec.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Finds the credentials with `env` (the environment) and `home` (the user's home folder).
pub fn find_credentials(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<S3Credentials, CredentialsError> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let file = |var_name: &str, rel: &str| var(var_name).map(PathBuf::from).or_else(|| home.map(|h| h.join(rel)));
    let cred_file = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let config_file = file("AWS_CONFIG_FILE", ".aws/config");
    let read = |p: &Option<PathBuf>| -> Result<Option<String>, CredentialsError> {
        let Some(p) = p else { return Ok(None) };
        match std::fs::read_to_string(p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CredentialsError::Unreadable {
                path: p.clone(),
                why: e.to_string(),
            }),
        }
    };
    let config_name = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let config = read(&config_file)?.and_then(|t| section(&t, &config_name));
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .or_else(|| config.as_ref().and_then(|c| get(c, "region")).map(String::from))
        .unwrap_or_else(|| "us-east-1".into());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key), Some(secret_key)) => {
            return Ok(S3Credentials {
                access_key,
                secret_key,
                session_token: var("AWS_SESSION_TOKEN"),
                region,
                source: "environment".into(),
            });
        }
        (Some(_), None) => {
            return Err(CredentialsError::Half {
                found: "AWS_ACCESS_KEY_ID".into(),
                missing: "AWS_SECRET_ACCESS_KEY".into(),
            });
        }
        (None, Some(_)) => {
            return Err(CredentialsError::Half {
                found: "AWS_SECRET_ACCESS_KEY".into(),
                missing: "AWS_ACCESS_KEY_ID".into(),
            });
        }
        (None, None) => {}
    }
    let creds = read(&cred_file)?.and_then(|t| section(&t, &profile));
    for (sec, path) in [(creds, &cred_file), (config, &config_file)] {
        let (Some(sec), Some(path)) = (sec, path) else { continue };
        let where_ = format!("{} [{profile}]", path.display());
        match (get(&sec, "aws_access_key_id"), get(&sec, "aws_secret_access_key")) {
            (Some(a), Some(s)) => {
                return Ok(S3Credentials {
                    access_key: a.into(),
                    secret_key: s.into(),
                    session_token: get(&sec, "aws_session_token").map(String::from),
                    region,
                    source: where_,
                });
            }
            (Some(_), None) => {
                return Err(CredentialsError::Half {
                    found: format!("aws_access_key_id in {where_}"),
                    missing: "aws_secret_access_key".into(),
                });
            }
            (None, Some(_)) => {
                return Err(CredentialsError::Half {
                    found: format!("aws_secret_access_key in {where_}"),
                    missing: "aws_access_key_id".into(),
                });
            }
            (None, None) => {}
        }
    }
    Err(CredentialsError::Missing {
        profile,
        files: [cred_file, config_file].into_iter().flatten().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_environment_comes_first_then_the_profile_of_either_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "# keys\n[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n[work]\nAWS_ACCESS_KEY_ID=AKWORK\naws_secret_access_key=swork\naws_session_token = tok\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = eu-central-1\n[profile work]\nregion=us-west-2\n[profile cfgonly]\naws_access_key_id=AKCFG\naws_secret_access_key=scfg\n",
        )
        .unwrap();
        let h = Some(home.path());
        let c = find_credentials(
            &env(&[("AWS_ACCESS_KEY_ID", "AKENV"), ("AWS_SECRET_ACCESS_KEY", "senv")]),
            h,
        )
        .unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.region.as_str(), c.source.as_str()),
            ("AKENV", "eu-central-1", "environment")
        );
        let c = find_credentials(&env(&[]), h).unwrap();
        assert_eq!((c.access_key.as_str(), c.secret_key.as_str()), ("AKDEF", "sdef"));
        let c = find_credentials(&env(&[("AWS_PROFILE", "work"), ("AWS_REGION", "ap-south-1")]), h).unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.session_token.as_deref(), c.region.as_str()),
            ("AKWORK", Some("tok"), "ap-south-1")
        );
        let c = find_credentials(&env(&[("AWS_PROFILE", "work")]), h).unwrap();
        assert_eq!(c.region, "us-west-2");
        let c = find_credentials(&env(&[("AWS_PROFILE", "cfgonly")]), h).unwrap();
        assert_eq!((c.access_key.as_str(), c.region.as_str()), ("AKCFG", "us-east-1"));
        assert!(!format!("{c:?}").contains("scfg"), "secrets stay out of debug output");
    }

    #[test]
    fn what_is_missing_is_named() {
        let home = tempfile::tempdir().unwrap();
        let e = find_credentials(&env(&[("AWS_ACCESS_KEY_ID", "AK")]), Some(home.path())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
        );
        let e = find_credentials(&env(&[("AWS_PROFILE", "nope")]), Some(home.path())).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("AWS_ACCESS_KEY_ID") && msg.contains("\"nope\"") && msg.contains(".aws/credentials"),
            "{msg}"
        );
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id=AK\n",
        )
        .unwrap();
        let e = find_credentials(&env(&[]), Some(home.path())).unwrap_err();
        assert!(e.to_string().contains("aws_secret_access_key"), "{e}");
    }
}

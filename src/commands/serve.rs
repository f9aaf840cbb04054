//! `backup-fs serve --webdav ADDR`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use mount::{Credentials, TlsFiles, WebdavOptions};

use crate::cli::ServeArgs;

/// The environment variable a password can come from.
const PASSWORD_ENV: &str = "BACKUP_FS_WEBDAV_PASSWORD";

/// The password from `--password-file` or the environment (never the command line).
fn password(args: &ServeArgs) -> Result<Option<String>> {
    let pw = match &args.password_file {
        Some(f) => {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("cannot read password file {}", f.display()))?;
            let first = text.lines().next().unwrap_or("").to_string();
            if first.is_empty() {
                bail!("password file {} is empty", f.display());
            }
            Some(first)
        }
        None => match std::env::var(PASSWORD_ENV) {
            Ok(p) if p.is_empty() => bail!("{PASSWORD_ENV} is set but empty"),
            Ok(p) => Some(p),
            Err(_) => None,
        },
    };
    Ok(pw)
}

pub fn run(store_dir: &super::StoreArg, args: &ServeArgs, cache_dir: Option<&Path>) -> Result<ExitCode> {
    let store = store_dir.open_serving(args.cache_size)?;
    let credentials = password(args)?.map(|password| Credentials {
        user: args.user.clone(),
        password,
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let opts = WebdavOptions {
        addr: args.webdav,
        listen_any: args.listen_any,
        credentials,
        tls,
        threads: args.threads,
        cache_dir: cache_dir.map(Path::to_path_buf),
    };
    let server = mount::webdav::serve(store, &opts)?;
    eprintln!(
        "serving {} snapshots of {} at {} (read-only WebDAV); press Ctrl-C to stop",
        server.snapshots(),
        store_dir.describe(),
        server.url()
    );
    let stop = super::stop_on_signals()?;
    server.wait(&stop);
    debug_assert!(stop.load(Ordering::Relaxed));
    eprintln!("stopped serving {}", store_dir.describe());
    Ok(ExitCode::SUCCESS)
}

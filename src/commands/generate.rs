//! `backup-fs completions SHELL` and `backup-fs man`: generated from the same clap definitions
//! the command line is parsed with, so they never disagree with it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The completion script of `shell` to standard output.
pub fn completions(shell: Shell) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "backup-fs", &mut out);
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// The manual page `backup-fs.1` to standard output, or, with `dir`, it and one page per
/// command (`backup-fs-write.1`, ...) written into `dir`.
pub fn man(dir: Option<&Path>) -> Result<ExitCode> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
            eprintln!(
                "manual pages written to {} (read one with `man -l {}/backup-fs.1`)",
                dir.display(),
                dir.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing to standard output")?;
            out.flush().context("writing to standard output")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

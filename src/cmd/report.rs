//! `nfs-walker report IN -o report.html`.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    pub input: PathBuf,
}

pub fn run(_args: &ReportArgs) -> Result<i32> {
    anyhow::bail!("report: not built yet")
}

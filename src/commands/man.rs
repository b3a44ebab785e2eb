//! `vmrescue man` and `vmrescue completions`: the documentation the binary
//! carries. Under `--json` the envelope carries it (or the pages' paths).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use vmrescue::ExitCode;

use super::Session;
use crate::cli::Cli;
use crate::output::{emit, Rendered};

/// `man --dir` lists the pages written; `man` and `completions` carry the
/// document.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum DocsData {
    Pages(Pages),
    Document(Document),
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Pages {
    /// The files written.
    pub(crate) pages: Vec<PathBuf>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Document {
    /// The man page (roff) or completion script.
    pub(crate) content: String,
}

pub(crate) fn man(session: &Session, dir: Option<&Path>) -> Result<ExitCode> {
    match dir {
        Some(dir) => {
            let pages = crate::ui::manpages::write_all(Cli::command(), dir)?;
            let text = pages.iter().map(|p| format!("{}\n", p.display())).collect();
            emit(
                &session.sink,
                &Rendered::new(DocsData::Pages(Pages { pages }), text),
            )
        }
        None => {
            let page = crate::ui::manpages::top_page(Cli::command())?;
            raw_or_json(session, page)
        }
    }
}

pub(crate) fn completions(session: &Session, shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vmrescue", &mut script);
    raw_or_json(session, script)
}

/// A document goes out byte for byte (roff and shell scripts are not text
/// to rewrap), or inside the envelope under `--json`.
fn raw_or_json(session: &Session, bytes: Vec<u8>) -> Result<ExitCode> {
    if session.json() {
        let content = String::from_utf8_lossy(&bytes).into_owned();
        return emit(
            &session.sink,
            &Rendered::new(DocsData::Document(Document { content }), String::new()),
        );
    }
    std::io::stdout()
        .lock()
        .write_all(&bytes)
        .context("writing to stdout")?;
    Ok(ExitCode::Success)
}

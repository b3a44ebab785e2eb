//! `vmrescue az-payload`: the shell script `az vm repair run` ships to the
//! repair VM, with the repair's settings (and console logs) baked in.

use std::path::PathBuf;

use anyhow::{Context, Result};
use vmrescue::{ExitCode, Failure};

use super::{parse_params, read_named, Session};
use crate::cli::{AzPayloadArgs, DownloadArgs};
use crate::output::{emit, Rendered};
use crate::ui::payload::{self, Download, PayloadBootCheck, PayloadSettings};

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Payload {
    /// Where it was written (`--output-file`), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<PathBuf>,
    pub(crate) bytes: usize,
    /// The script itself when it was not written to a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) script: Option<String>,
}

pub(crate) fn run(session: &Session, args: &AzPayloadArgs) -> Result<ExitCode> {
    let script = payload::render_payload(&settings(args)?)?;
    let bytes = script.len();
    let Some(path) = &args.output_file else {
        if session.json() {
            let data = Payload {
                file: None,
                bytes,
                script: Some(script),
            };
            return emit(&session.sink, &Rendered::new(data, String::new()));
        }
        print!("{script}");
        return Ok(ExitCode::Success);
    };
    std::fs::write(path, &script).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))?;
    if session.chatty() {
        eprintln!("wrote {} ({bytes} bytes)", path.display());
    }
    let data = Payload {
        file: Some(path.clone()),
        bytes,
        script: None,
    };
    emit(&session.sink, &Rendered::new(data, String::new()))
}

fn settings(args: &AzPayloadArgs) -> Result<PayloadSettings> {
    let recipe = args
        .recipe
        .clone()
        .unwrap_or_else(|| args.recipe_arg.clone());
    if recipe != "auto" {
        vmrescue::recipe::Catalog::load(None)?.get(&recipe)?;
    }
    let mut params: Vec<(String, String)> = parse_params(&args.params)?.into_iter().collect();
    params.extend(args.kernel.clone().map(|k| ("kernel".to_string(), k)));
    params.extend(args.module.clone().map(|m| ("module".to_string(), m)));
    let mut console_logs = Vec::new();
    for path in &args.logs {
        let log = read_named(path)?;
        console_logs.push(match args.log_tail_kib {
            Some(kib) => payload::log_tail(&log, kib).to_vec(),
            None => log,
        });
    }
    Ok(PayloadSettings {
        recipe,
        params,
        dry_run: args.dry_run,
        boot_check: if args.verify_boot {
            PayloadBootCheck::Required
        } else if args.no_verify_boot {
            PayloadBootCheck::Off
        } else {
            PayloadBootCheck::Default
        },
        download: payload_download(&args.download)?,
        console_logs,
    })
}

/// How the payload gets vmrescue onto a fresh repair VM. A payload that
/// could only stop with "no usable vmrescue binary" is refused here.
pub(crate) fn payload_download(args: &DownloadArgs) -> Result<Download> {
    if args.no_download {
        return Ok(Download::None);
    }
    if let (Some(url), Some(sha256)) = (&args.binary_url, &args.binary_sha256) {
        return Ok(Download::Url {
            url: url.clone(),
            sha256: sha256.to_ascii_lowercase(),
        });
    }
    let sums_text = match &args.sha256sums {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let sums = vmrescue::release::known_sums(sums_text.as_deref())?;
    if sums.is_empty() {
        return Err(Failure::Usage(
            "this vmrescue is not a release build, so a payload would have nothing verified to download: pass --sha256sums SHA256SUMS (with --release-url URL when not the project's releases), --binary-url URL --binary-sha256 SUM, or --no-download when vmrescue is installed on the repair VM".into(),
        )
        .into());
    }
    Ok(Download::Release {
        url: args
            .release_url
            .clone()
            .unwrap_or_else(vmrescue::release::default_release_url)
            .trim_end_matches('/')
            .to_string(),
        sums,
    })
}

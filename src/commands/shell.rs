//! The interactive verbs: the wizard and `vmrescue chroot`. Their output is
//! a conversation (or another program's), so they have no JSON form.

use anyhow::Result;
use vmrescue::cmd::Cmd;
use vmrescue::{ExitCode, Failure};

use super::{open_target, Session};
use crate::cli::{ChrootArgs, WizardArgs};

fn refuse_json(session: &Session) -> Result<()> {
    if session.json() {
        return Err(Failure::Usage(format!(
            "`{}` is interactive and has no JSON form",
            session.sink.command
        ))
        .into());
    }
    Ok(())
}

pub(crate) fn wizard(session: &Session, args: &WizardArgs) -> Result<ExitCode> {
    refuse_json(session)?;
    crate::ui::wizard::require_terminal()?;
    let mut prompter = crate::ui::prompt::for_terminal(session.style().color);
    let mut wizard = crate::ui::wizard::Wizard {
        prompter: prompter.as_mut(),
        style: session.style(),
        run_id: session.run_id.clone(),
        log_path: session.log_path.clone(),
        mount_base: args.target.mount_base.clone(),
        recipes_dir: args.recipes_dir.clone(),
    };
    wizard.run(args.target.spec())
}

pub(crate) fn chroot(session: &Session, args: &ChrootArgs) -> Result<ExitCode> {
    refuse_json(session)?;
    let target = open_target(&args.target)?;
    if args.rw {
        target.make_writable()?;
    }
    let (program, rest) = match args.command.split_first() {
        Some((program, rest)) => (program.clone(), rest.to_vec()),
        None => ("/bin/sh".to_string(), Vec::new()),
    };
    let cmd = Cmd::new(&program)
        .args(&rest)
        .env("PS1", "(vmrescue chroot) # ")
        .in_chroot(target.chroot_spec()?);
    let status = {
        let _interactive = vmrescue::signals::InteractiveGuard::new();
        cmd.run_interactive()?
    };
    target.release()?;
    let code = status.code().unwrap_or(1).clamp(0, 255) as u8;
    Ok(ExitCode::from_raw(code))
}

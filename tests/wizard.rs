//! The interactive wizard driven as a person would: the real binary in a
//! tmux pseudo-terminal, keys sent with `send-keys`, the screen read with
//! `capture-pane`. Root-only (loop images); skipped without tmux.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

struct Pane {
    session: String,
    exit_file: PathBuf,
}

impl Pane {
    /// Starts `vmrescue ARGS` under `TERM=term` in a detached tmux session.
    fn start(name: &str, term: &str, args: &[&str], dir: &Path) -> Pane {
        let exit_file = dir.join(format!("{name}.exit"));
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let command = format!(
            "env TERM={term} NO_COLOR= {bin} {args}; echo $? > {exit}; sleep 300",
            bin = env!("CARGO_BIN_EXE_vmrescue"),
            args = quoted.join(" "),
            exit = exit_file.display()
        );
        let session = format!("vmrescue-test-{name}-{}", std::process::id());
        let status = std::process::Command::new("tmux")
            .args(["new-session", "-d", "-x", "200", "-y", "50", "-s", &session])
            .arg(command)
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Pane { session, exit_file }
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args([
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-3000",
                "-t",
                &self.session,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text` (after `since` bytes of it).
    fn wait_for(&self, text: &str, since: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let screen = self.screen();
            if screen.get(since..).is_some_and(|s| s.contains(text)) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {text:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let status = std::process::Command::new("tmux")
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn type_line(&self, text: &str) {
        if !text.is_empty() {
            self.keys(&["-l", text]);
        }
        self.keys(&["Enter"]);
    }

    fn exit_code(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&self.exit_file) {
                if !text.trim().is_empty() {
                    return text.trim().parse().unwrap();
                }
            }
            if Instant::now() > deadline {
                panic!("vmrescue did not exit; screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

fn tmux_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("SKIP {test}: needs tmux");
    }
    found
}

/// The menu number of the first item containing `text`, as the plain menu shows it.
fn menu_number(screen: &str, text: &str) -> String {
    let line = screen
        .lines()
        .rev()
        .find(|l| l.contains(text) && l.contains(") "))
        .unwrap_or_else(|| panic!("no menu item {text:?} in:\n{screen}"));
    let (number, _) = line.trim_start_matches(['*', ' ']).split_once(')').unwrap();
    number.trim().to_string()
}

fn planted_image() -> TestImage {
    let image = rhel_bls_image();
    image.with_partition(1, |root| {
        std::fs::write(root.join("etc/sysctl.conf"), "vm.panic_on_oom = 1\n").unwrap();
    });
    image
}

#[test]
fn plain_prompts_apply_a_suggested_recipe_and_an_older_kernel_then_unmount() {
    if !root_or_skip("wizard_plain_prompts") || !tmux_or_skip("wizard_plain_prompts") {
        return;
    }
    let _serial = serial();
    let image = planted_image();
    let before = host_snapshot(&image);
    let image_path = image.path.display().to_string();
    let pane = Pane::start(
        "plain",
        "dumb",
        &["wizard", "--image", &image_path],
        image.dir.path(),
    );

    pane.wait_for("Console log to read", 0);
    // A console log whose panic panic-on-oom answers.
    pane.type_line(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/panics/oom-panic-on-oom-debian8-sysrq-f.log"
    ));
    let screen = pane.wait_for("What next?", 0);
    assert!(screen.contains("[oom-panic]"), "{screen}");
    assert_eq!(
        screen.matches("Console log to read").count(),
        1,
        "the prompt is shown once: {screen}"
    );
    assert!(
        !screen.contains("\x1b["),
        "plain prompts use no escape sequences"
    );
    let first = screen
        .lines()
        .find(|l| l.contains("  1) "))
        .unwrap_or_default();
    assert!(
        first.contains("panic-on-oom") && first.contains("(suggested:"),
        "the suggested recipe comes first: {first}"
    );
    pane.type_line("1");
    let screen = pane.wait_for("Apply panic-on-oom now? [y/N]", 0);
    assert!(
        screen.contains("+vm.panic_on_oom = 0"),
        "the plan shows the diff:\n{screen}"
    );
    let mark = screen.len();
    pane.type_line("y");
    let screen = pane.wait_for("What next?", mark);
    assert!(screen[mark..].contains("panic-on-oom: applied"), "{screen}");
    // The log's finding predates the repair: addressed, not suggested again.
    assert!(
        screen[mark..].contains("Out of memory with vm.panic_on_oom enabled — addressed by run"),
        "{screen}"
    );
    let menu = &screen[screen.rfind("What next?").unwrap_or(0)..];
    assert!(
        !menu.contains("panic-on-oom — Let the OOM killer work instead of panicking (suggested"),
        "{menu}"
    );
    assert!(
        screen[mark..].contains("undo with `vmrescue undo"),
        "{screen}"
    );

    let mark = screen.len();
    pane.type_line(&menu_number(
        &screen[mark.saturating_sub(4000)..],
        "older-kernel",
    ));
    pane.wait_for("avoid_kernel: the kernel that fails to boot", mark);
    pane.type_line("");
    // The older kernel's line, not the prompt text (which also says "boots
    // by default now"), shows that the kernel list is on screen.
    let screen = pane.wait_for("5.14.0-362.8.1.el9_3.x86_64  (initramfs present)", mark);
    assert!(screen.contains("boots by default now)"), "{screen}");
    let mark = screen.len();
    pane.type_line("");
    pane.wait_for("once: boot it only once", mark);
    pane.type_line("");
    pane.wait_for("Apply older-kernel now? [y/N]", mark);
    let mark = pane.screen().len();
    pane.type_line("y");
    let screen = pane.wait_for("What next?", mark);
    assert!(screen[mark..].contains("older-kernel: applied"), "{screen}");

    let mark = screen.len();
    pane.type_line(&menu_number(
        &screen[mark.saturating_sub(4000)..],
        "unmount and exit",
    ));
    // After a repair the wizard offers a QEMU boot test; this disk's kernel is fake.
    pane.wait_for("Boot-test the disk now", mark);
    pane.type_line("n");
    assert_eq!(pane.exit_code(), 0, "{}", pane.screen());
    assert!(pane
        .screen()
        .contains(&format!("unmounted {}", image.key())));
    assert_eq!(
        host_snapshot(&image),
        before,
        "the wizard left something behind"
    );

    image.with_partition(1, |root| {
        let dropin = std::fs::read_to_string(root.join("etc/sysctl.d/99-vmrescue.conf"))
            .or_else(|_| {
                std::fs::read_dir(root.join("etc/sysctl.d"))
                    .unwrap()
                    .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .find(|t| t.contains("panic_on_oom"))
                    .ok_or(())
            })
            .unwrap();
        assert!(dropin.contains("vm.panic_on_oom = 0"), "{dropin}");
        let grubenv = std::fs::read_to_string(root.join("boot/grub2/grubenv")).unwrap();
        assert!(
            grubenv.contains("saved_entry=0123456789abcdef-5.14.0-362.8.1.el9_3.x86_64"),
            "{grubenv}"
        );
    });
}

#[test]
fn ctrl_c_at_a_menu_unmounts_everything_and_exits_130() {
    if !root_or_skip("wizard_ctrl_c") || !tmux_or_skip("wizard_ctrl_c") {
        return;
    }
    let _serial = serial();
    let image = planted_image();
    let before = host_snapshot(&image);
    let image_path = image.path.display().to_string();
    for (name, term) in [("fancy", "xterm-256color"), ("serial", "vt100")] {
        let pane = Pane::start(
            name,
            term,
            &["wizard", "--image", &image_path],
            image.dir.path(),
        );
        pane.wait_for("Console log to read", 0);
        pane.type_line("");
        pane.wait_for("What next?", 0);
        std::thread::sleep(Duration::from_millis(300));
        pane.keys(&["C-c"]);
        assert_eq!(pane.exit_code(), 130, "{term}: {}", pane.screen());
        assert_eq!(
            host_snapshot(&image),
            before,
            "{term}: Ctrl-C left something behind"
        );
    }
}

#[test]
fn without_a_terminal_no_command_prints_help_and_the_wizard_refuses() {
    let out = vmrescue()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    let out = vmrescue()
        .arg("wizard")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a terminal"));
}

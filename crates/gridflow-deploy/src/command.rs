//! Running the batch system's, ssh's and kubectl's commands, their failures reported with
//! their own messages.

use crate::{DeployError, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// How long one command (`sbatch`, `squeue`, `ssh`, `kubectl`) may take before it is
/// killed and reported: a hung batch system or host never stalls its caller for ever.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `program args...` with `input` on standard input (if any) and returns its standard
/// output; a failure carries what it printed on standard error, and a command still
/// running after [`COMMAND_TIMEOUT`] is killed and reported.
pub fn run(program: &str, args: &[String], input: Option<&str>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| DeployError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    // A program that fails early stops reading: its own message says more than the
    // broken pipe, so a write error is reported only if it then succeeds.
    let mut written = Ok(());
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        written = stdin.write_all(text.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(r) => r.map_err(|e| DeployError::io(format!("waiting for {program}"), e))?,
        Err(_) => {
            // Killing by id is safe: the waiting thread has not reaped it yet.
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            return Err(DeployError::Timeout(format!(
                "{}: no answer within {COMMAND_TIMEOUT:?}; killed",
                describe(program, args)
            )));
        }
    };
    if out.status.success() {
        written.map_err(|e| DeployError::io(format!("writing to {program}'s input"), e))?;
    } else {
        return Err(DeployError::Command {
            command: describe(program, args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program args...`, cut to a readable length.
pub(crate) fn describe(program: &str, args: &[String]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(a);
        if s.len() > 160 {
            s.push_str(" ...");
            break;
        }
    }
    s
}

/// Quotes `s` for a POSIX shell (single quotes, embedded ones escaped).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        for s in ["plain", "with space", "it's", "$HOME", "a\"b", ""] {
            let out = run(
                "sh",
                &["-c".into(), format!("printf %s {}", shell_quote(s))],
                None,
            )
            .unwrap();
            assert_eq!(out, s);
        }
    }

    #[test]
    fn a_failing_command_keeps_its_message() {
        let e = run("sh", &["-c".into(), "echo nope >&2; exit 3".into()], None).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("nope") && m.contains('3'), "{m}");
        let e = run("gridflow-no-such-program", &[], None).unwrap_err();
        assert!(e.to_string().contains("gridflow-no-such-program"), "{e}");
    }
}

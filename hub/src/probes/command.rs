//! Command probes: a program run without a shell, judged by exit code and standard output.
//! They run on the hub's host, so a hub refuses them unless `limits.allow_command_probes`.

use std::process::Stdio;

use chaoshub_schema::probe::CommandProbe;

use super::{excerpt, timeout_of};

pub async fn check(spec: &CommandProbe) -> Result<String, String> {
    let Some((program, args)) = spec.run.split_first() else {
        return Err("no program to run".into());
    };
    let timeout = timeout_of(&spec.timeout);
    let shown = spec.run.join(" ");
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A probe that outlives its timeout is killed, not left running.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {shown:?}: {e}"))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("{shown:?}: {e}")),
        Err(_) => {
            return Err(format!(
                "{shown:?} did not exit within {} ms (killed)",
                timeout.as_millis()
            ))
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    let evidence = format!(
        "{shown:?} exited with {}, stdout: {:?}, stderr: {:?}",
        code.map(|c| c.to_string())
            .unwrap_or_else(|| "a signal".into()),
        excerpt(&stdout, 160),
        excerpt(&stderr, 160)
    );
    if code != Some(spec.expect.exit_code) {
        return Err(format!(
            "expected exit code {}; {evidence}",
            spec.expect.exit_code
        ));
    }
    if let Some(needle) = &spec.expect.stdout_contains {
        if !stdout.contains(needle.as_str()) {
            return Err(format!("expected stdout to contain {needle:?}; {evidence}"));
        }
    }
    if let Some(exact) = &spec.expect.stdout_equals {
        if stdout.trim() != exact.trim() {
            return Err(format!("expected stdout to be {exact:?}; {evidence}"));
        }
    }
    Ok(evidence)
}

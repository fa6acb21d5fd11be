//! PowerShell: module logging (4103, `ContextInfo` read into `powershell.*`, `user.*` and
//! `process.command_line`) and script-block logging (4104, the script text into
//! `powershell.file.script_block_text`), with `event.action` as the task's name.

use weir_schemas::{Event, File, PowerShell, PowerShellCommand, PowerShellEngine, ScriptBlock};

use super::{data, process, set_categories, set_user_from_account, WinEvent};

pub(super) fn apply(event: &mut Event, rec: &WinEvent) -> bool {
    match rec.event_id {
        4103 => {
            set_categories(event, &["process"], &["info"], "Executing Pipeline");
            module_logging(event, rec);
            true
        }
        4104 => {
            set_categories(event, &["process"], &["info"], "Execute a Remote Command");
            script_block(event, rec);
            true
        }
        _ => false,
    }
}

fn script_block(event: &mut Event, rec: &WinEvent) {
    let ps = PowerShell {
        file: Some(ScriptBlock {
            script_block_id: data(rec, "ScriptBlockId").map(str::to_owned),
            script_block_text: data(rec, "ScriptBlockText").map(str::to_owned),
        }),
        sequence: data(rec, "MessageNumber").and_then(|n| n.parse().ok()),
        total: data(rec, "MessageTotal").and_then(|n| n.parse().ok()),
        ..PowerShell::default()
    };
    event.powershell = Some(Box::new(ps));
    if let Some(path) = data(rec, "Path") {
        event.file = Some(Box::new(File {
            path: Some(path.to_owned()),
            name: Some(super::basename(path).to_owned()),
            ..File::default()
        }));
    }
}

/// `ContextInfo` is a block of `        Name = value` lines (names in the host's language; the
/// English ones are read).
fn module_logging(event: &mut Event, rec: &WinEvent) {
    let Some(context) = data(rec, "ContextInfo") else {
        return;
    };
    let field = |name: &str| -> Option<&str> {
        context.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == name)
                .then(|| v.trim())
                .filter(|v| !v.is_empty())
        })
    };
    let ps = PowerShell {
        command: (field("Command Name").is_some() || field("Command Type").is_some()).then(|| {
            PowerShellCommand {
                name: field("Command Name").map(str::to_owned),
                kind: field("Command Type").map(str::to_owned),
            }
        }),
        engine: field("Engine Version").map(|v| PowerShellEngine {
            version: Some(v.to_owned()),
        }),
        runspace_id: field("Runspace ID").map(str::to_owned),
        pipeline_id: field("Pipeline ID").map(str::to_owned),
        sequence: field("Sequence Number").and_then(|n| n.parse().ok()),
        ..PowerShell::default()
    };
    let host_application = field("Host Application").map(str::to_owned);
    let script = field("Script Name").map(str::to_owned);
    let user = field("User").map(str::to_owned);
    event.powershell = Some(Box::new(ps));
    if let Some(cmd) = host_application {
        process(event).command_line = Some(cmd);
    }
    if let Some(path) = script {
        event.file = Some(Box::new(File {
            name: Some(super::basename(&path).to_owned()),
            path: Some(path),
            ..File::default()
        }));
    }
    if let Some(user) = user {
        set_user_from_account(event, &user);
    }
}

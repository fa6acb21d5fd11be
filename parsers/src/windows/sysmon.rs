//! Sysmon (`Microsoft-Windows-Sysmon/Operational`): process, network, image-load, process
//! access, file, registry and DNS events into `process.*`, `source.*`/`destination.*`,
//! `file.*`, `registry.*` and `dns.*`, with `event.action` as Winlogbeat's Sysmon module
//! writes it.

use std::borrow::Cow;

use weir_schemas::{
    Dns, DnsQuestion, Event, File, Hash, ParentProcess, Pe, Registry, RegistryData,
};

use super::{
    basename, data, ip, process, set_categories, set_endpoint, set_executable,
    set_user_from_account, winlog, WinEvent,
};

type Categorisation = (
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

fn categorise(id: u32) -> Option<Categorisation> {
    Some(match id {
        1 => (&["process"], &["start"], "Process creation"),
        2 => (
            &["file"],
            &["change"],
            "A process changed a file creation time",
        ),
        3 => (
            &["network"],
            &["start", "connection", "protocol"],
            "Network connection",
        ),
        4 => (&["process"], &["change"], "Sysmon service state changed"),
        5 => (&["process"], &["end"], "Process terminated"),
        6 => (&["driver"], &["start"], "Driver loaded"),
        7 => (&["process"], &["change"], "Image loaded"),
        8 => (&["process"], &["change"], "CreateRemoteThread"),
        9 => (&["process"], &["access"], "RawAccessRead"),
        10 => (&["process"], &["access"], "ProcessAccess"),
        11 => (&["file"], &["creation"], "FileCreate"),
        12 => (
            &["configuration", "registry"],
            &["change"],
            "RegistryEvent (Object create and delete)",
        ),
        13 => (
            &["configuration", "registry"],
            &["change"],
            "RegistryEvent (Value Set)",
        ),
        14 => (
            &["configuration", "registry"],
            &["change"],
            "RegistryEvent (Key and Value Rename)",
        ),
        15 => (&["file"], &["access"], "FileCreateStreamHash"),
        16 => (
            &["configuration"],
            &["change"],
            "ServiceConfigurationChange",
        ),
        17 => (&["file"], &["creation"], "PipeEvent (Pipe Created)"),
        18 => (&["file"], &["access"], "PipeEvent (Pipe Connected)"),
        22 => (
            &["network"],
            &["connection", "protocol", "info"],
            "DNSEvent (DNS query)",
        ),
        23 => (
            &["file"],
            &["deletion"],
            "FileDelete (File Delete archived)",
        ),
        26 => (
            &["file"],
            &["deletion"],
            "FileDeleteDetected (File Delete logged)",
        ),
        _ => return None,
    })
}

pub(super) fn apply(event: &mut Event, rec: &WinEvent) -> bool {
    let id = rec.event_id;
    let Some((category, kind, action)) = categorise(id) else {
        return false;
    };
    set_categories(event, category, kind, action);

    // The acting process: `Image`/`ProcessGuid`/`ProcessId`, or `Source*` for process access.
    let (guid, pid, image) = if id == 10 {
        ("SourceProcessGUID", "SourceProcessId", "SourceImage")
    } else {
        ("ProcessGuid", "ProcessId", "Image")
    };
    if let Some(path) = data(rec, image) {
        set_executable(event, path);
    }
    if let Some(pid) = data(rec, pid).and_then(super::pid) {
        process(event).pid = Some(pid);
    }
    let guid = data(rec, guid).or_else(|| data(rec, "SourceProcessGuid").filter(|_| id == 10));
    if let Some(guid) = guid {
        process(event).entity_id = Some(guid.to_owned());
    }
    if let Some(user) = data(rec, "User").or_else(|| data(rec, "SourceUser")) {
        set_user_from_account(event, user);
    }
    if let Some(logon_id) = data(rec, "LogonId") {
        winlog(event).logon.get_or_insert_with(Default::default).id = Some(logon_id.to_owned());
    }

    match id {
        1 => process_create(event, rec),
        3 => network(event, rec),
        6 | 7 => {
            if let Some(path) = data(rec, "ImageLoaded") {
                let mut file = file_at(path);
                file.hash = hashes(event, rec);
                file.pe = pe(rec);
                event.file = Some(Box::new(file));
            }
        }
        2 | 11 | 15 | 23 | 26 => {
            if let Some(path) = data(rec, "TargetFilename") {
                let mut file = file_at(path);
                if matches!(id, 15 | 23 | 26) {
                    file.hash = hashes(event, rec);
                }
                event.file = Some(Box::new(file));
            }
        }
        17 | 18 => {
            if let Some(pipe) = data(rec, "PipeName") {
                event.file = Some(Box::new(File {
                    name: Some(pipe.to_owned()),
                    ..File::default()
                }));
            }
        }
        12..=14 => registry(event, rec),
        22 => dns(event, rec),
        _ => {}
    }
    true
}

fn process_create(event: &mut Event, rec: &WinEvent) {
    let hash = hashes(event, rec);
    let pe = pe(rec);
    let p = process(event);
    p.command_line = data(rec, "CommandLine").map(str::to_owned);
    p.working_directory = data(rec, "CurrentDirectory").map(str::to_owned);
    p.hash = hash;
    p.pe = pe;
    let parent = ParentProcess {
        entity_id: data(rec, "ParentProcessGuid").map(str::to_owned),
        pid: data(rec, "ParentProcessId").and_then(super::pid),
        executable: data(rec, "ParentImage").map(str::to_owned),
        name: data(rec, "ParentImage").map(|p| basename(p).to_owned()),
        command_line: data(rec, "ParentCommandLine").map(str::to_owned),
    };
    if parent != ParentProcess::default() {
        p.parent = Some(Box::new(parent));
    }
}

fn network(event: &mut Event, rec: &WinEvent) {
    for (endpoint, addr, port, host) in [
        ("source", "SourceIp", "SourcePort", "SourceHostname"),
        (
            "destination",
            "DestinationIp",
            "DestinationPort",
            "DestinationHostname",
        ),
    ] {
        let slot = if endpoint == "source" {
            &mut event.source
        } else {
            &mut event.destination
        };
        let ip = set_endpoint(slot, data(rec, addr), data(rec, port));
        if let Some(name) = data(rec, host) {
            slot.get_or_insert_with(Default::default).domain = Some(name.to_owned());
            event.relate_host(name);
        }
        if let Some(ip) = ip {
            event.relate_ip(&ip);
        }
    }
    let transport = data(rec, "Protocol").map(str::to_ascii_lowercase);
    let initiated = data(rec, "Initiated").map(|v| v.eq_ignore_ascii_case("true"));
    let network = event.network.get_or_insert_with(Default::default);
    network.transport = transport.map(Cow::Owned);
    network.protocol = data(rec, "DestinationPortName")
        .filter(|_| initiated == Some(true))
        .map(|p| Cow::Owned(p.to_ascii_lowercase()));
    network.direction = initiated.map(|out| Cow::Borrowed(if out { "egress" } else { "ingress" }));
}

fn registry(event: &mut Event, rec: &WinEvent) {
    let Some(target) = data(rec, "TargetObject") else {
        return;
    };
    let (hive, rest) = match target.split_once('\\') {
        Some((hive, rest)) => (hive, rest),
        None => (target, ""),
    };
    let hive = match hive.to_ascii_uppercase().as_str() {
        "HKEY_LOCAL_MACHINE" => "HKLM",
        "HKEY_USERS" => "HKU",
        "HKEY_CURRENT_USER" => "HKCU",
        "HKEY_CLASSES_ROOT" => "HKCR",
        "HKEY_CURRENT_CONFIG" => "HKCC",
        _ => hive,
    };
    // A value event names the value as the last component; a key event names the key.
    let value_event =
        rec.event_id == 13 || data(rec, "EventType").is_some_and(|t| t.ends_with("Value"));
    let (key, value) = match (value_event, rest.rsplit_once('\\')) {
        (true, Some((key, value))) => (key, Some(value)),
        _ => (rest, None),
    };
    let data_field = data(rec, "Details").map(|details| RegistryData {
        strings: vec![details.to_owned()],
        kind: Some(registry_type(details).to_owned()),
    });
    event.registry = Some(Box::new(Registry {
        path: Some(target.to_owned()),
        hive: Some(hive.to_owned()),
        key: (!key.is_empty()).then(|| key.to_owned()),
        value: value.map(str::to_owned),
        data: data_field,
    }));
}

/// The registry value type as Sysmon's `Details` shows it.
fn registry_type(details: &str) -> &'static str {
    if details.starts_with("DWORD") {
        "REG_DWORD"
    } else if details.starts_with("QWORD") {
        "REG_QWORD"
    } else if details.starts_with("Binary Data") {
        "REG_BINARY"
    } else {
        "REG_SZ"
    }
}

fn dns(event: &mut Event, rec: &WinEvent) {
    let name = data(rec, "QueryName");
    // `QueryResults`: `type:  5 edge.example.net;::ffff:192.0.2.10;192.0.2.11;`
    let resolved: Vec<String> = data(rec, "QueryResults")
        .map(|r| r.split(';').filter_map(ip).collect())
        .unwrap_or_default();
    for r in &resolved {
        event.relate_ip(r);
    }
    if let Some(name) = name {
        event.relate_host(name);
    }
    event.dns = Some(Box::new(Dns {
        question: name.map(|n| DnsQuestion {
            name: Some(n.to_owned()),
        }),
        resolved_ip: resolved,
    }));
}

fn file_at(path: &str) -> File {
    let name = basename(path);
    let directory = path
        .len()
        .checked_sub(name.len() + 1)
        .and_then(|end| path.get(..end))
        .filter(|d| !d.is_empty());
    File {
        path: Some(path.to_owned()),
        name: Some(name.to_owned()),
        directory: directory.map(str::to_owned),
        extension: name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| !e.is_empty()),
        ..File::default()
    }
}

/// `Hashes` (`SHA1=..,MD5=..,SHA256=..,IMPHASH=..`) as lower-case digests, each related.
fn hashes(event: &mut Event, rec: &WinEvent) -> Option<Hash> {
    let text = data(rec, "Hashes").or_else(|| data(rec, "Hash"))?;
    let mut hash = Hash::default();
    for part in text.split(',') {
        let Some((kind, value)) = part.split_once('=') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        if value.is_empty() || value.bytes().all(|b| b == b'0') {
            continue;
        }
        let slot = match kind.trim().to_ascii_uppercase().as_str() {
            "MD5" => &mut hash.md5,
            "SHA1" => &mut hash.sha1,
            "SHA256" => &mut hash.sha256,
            "SHA512" => &mut hash.sha512,
            _ => continue, // IMPHASH goes to *.pe.imphash
        };
        event.relate_hash(&value);
        *slot = Some(value);
    }
    (!hash.is_empty()).then_some(hash)
}

fn pe(rec: &WinEvent) -> Option<Pe> {
    let imphash = data(rec, "Hashes").and_then(|h| {
        h.split(',').find_map(|part| {
            let (kind, value) = part.split_once('=')?;
            let value = value.trim();
            (kind.trim().eq_ignore_ascii_case("IMPHASH") && value.bytes().any(|b| b != b'0'))
                .then(|| value.to_ascii_lowercase())
        })
    });
    let pe = Pe {
        original_file_name: data(rec, "OriginalFileName").map(str::to_owned),
        company: data(rec, "Company").map(str::to_owned),
        description: data(rec, "Description").map(str::to_owned),
        product: data(rec, "Product").map(str::to_owned),
        file_version: data(rec, "FileVersion").map(str::to_owned),
        imphash,
    };
    (pe != Pe::default()).then_some(pe)
}

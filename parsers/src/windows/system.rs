//! The System log: services installed (7045) and changing state (7036), and the event log
//! cleared (104).

use std::borrow::Cow;

use weir_schemas::{Event, Service, User};

use super::{data, set_categories, user_data, WinEvent};

pub(super) fn apply(event: &mut Event, rec: &WinEvent) -> bool {
    let provider = rec.provider_name.as_deref().unwrap_or_default();
    match (rec.event_id, provider) {
        (7045, "Service Control Manager") => {
            set_categories(
                event,
                &["configuration"],
                &["creation"],
                "service-installed",
            );
            service(event, data(rec, "ServiceName"));
            system_user(event, rec);
            true
        }
        (7036, "Service Control Manager") => {
            // param1: the service's display name; param2: its new state, in the host's language
            // (`running`, `stopped`, ... in English).
            let state = data(rec, "param2").map(str::to_ascii_lowercase);
            let kind: &'static [&'static str] = match state.as_deref() {
                Some("running") => &["start"],
                Some("stopped") => &["end"],
                _ => &["change"],
            };
            set_categories(event, &["process"], kind, "service-state-changed");
            service(event, data(rec, "param1"));
            true
        }
        (104, "Microsoft-Windows-Eventlog") => {
            // The action is the task's name, as Winlogbeat writes it and as Elastic's
            // "Clearing Windows Event Logs" rule expects.
            set_categories(event, &["iam"], &["admin", "change"], "Log clear");
            if let Some(name) = user_data(rec, "SubjectUserName") {
                let user = event.user.get_or_insert_with(User::default);
                user.name = Some(name.to_owned());
                user.domain = user_data(rec, "SubjectDomainName").map(str::to_owned);
                event.relate_user(name);
            }
            event.event.outcome = Some(Cow::Borrowed("success"));
            true
        }
        _ => false,
    }
}

fn service(event: &mut Event, name: Option<&str>) {
    if let Some(name) = name {
        event.service = Some(Service {
            name: Some(name.to_owned()),
        });
    }
}

/// The account that logged the event (`System/Security/@UserID`) as `user.id`.
fn system_user(event: &mut Event, rec: &WinEvent) {
    if let Some(sid) = rec.user_id.as_deref() {
        event.user.get_or_insert_with(User::default).id = Some(sid.to_owned());
    }
}

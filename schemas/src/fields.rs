//! Every field an [`Event`](crate::Event) can carry, with the Elasticsearch mapping type it is
//! stored as: the source of the index templates the Elasticsearch sink installs, and the list
//! the tests hold the encoders to (every field any parser emits must be here; every ECS field
//! here must have ECS's type, checked against the vendored `ecs_flat.yml`).

use serde_json::{json, Map, Value};

/// One field: dotted name and Elasticsearch type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Dotted name, as ECS writes it.
    pub name: &'static str,
    /// Elasticsearch mapping type (`keyword`, `long`, `ip`, `date`, `flattened`, ...).
    pub ty: &'static str,
}

const fn f(name: &'static str, ty: &'static str) -> Field {
    Field { name, ty }
}

/// The fields: ECS ones, the custom `winlog.*` and `powershell.*` (as Winlogbeat names them),
/// then Weir's own (`weir.*`).
pub const FIELDS: &[Field] = &[
    f("@timestamp", "date"),
    f("ecs.version", "keyword"),
    f("message", "match_only_text"),
    f("tags", "keyword"),
    f("labels", "object"),
    f("event.kind", "keyword"),
    f("event.category", "keyword"),
    f("event.type", "keyword"),
    f("event.outcome", "keyword"),
    f("event.action", "keyword"),
    f("event.code", "keyword"),
    f("event.dataset", "keyword"),
    f("event.module", "keyword"),
    f("event.provider", "keyword"),
    f("event.severity", "long"),
    f("event.timezone", "keyword"),
    f("event.created", "date"),
    f("event.ingested", "date"),
    f("event.reason", "keyword"),
    f("event.original", "keyword"),
    f("event.start", "date"),
    f("event.end", "date"),
    f("event.duration", "long"),
    f("log.level", "keyword"),
    f("log.logger", "keyword"),
    f("log.syslog.facility.code", "long"),
    f("log.syslog.facility.name", "keyword"),
    f("log.syslog.severity.code", "long"),
    f("log.syslog.severity.name", "keyword"),
    f("log.syslog.priority", "long"),
    f("log.syslog.version", "keyword"),
    f("log.syslog.hostname", "keyword"),
    f("log.syslog.appname", "keyword"),
    f("log.syslog.procid", "keyword"),
    f("log.syslog.msgid", "keyword"),
    f("log.syslog.structured_data", "flattened"),
    f("host.name", "keyword"),
    f("host.hostname", "keyword"),
    f("host.ip", "ip"),
    f("host.mac", "keyword"),
    f("host.os.type", "keyword"),
    f("host.os.family", "keyword"),
    f("host.os.platform", "keyword"),
    f("observer.hostname", "keyword"),
    f("observer.ip", "ip"),
    f("observer.name", "keyword"),
    f("observer.product", "keyword"),
    f("observer.type", "keyword"),
    f("observer.vendor", "keyword"),
    f("process.name", "keyword"),
    f("process.pid", "long"),
    f("process.executable", "keyword"),
    f("process.command_line", "wildcard"),
    f("process.working_directory", "keyword"),
    f("process.entity_id", "keyword"),
    f("process.hash.md5", "keyword"),
    f("process.hash.sha1", "keyword"),
    f("process.hash.sha256", "keyword"),
    f("process.hash.sha512", "keyword"),
    f("process.pe.original_file_name", "keyword"),
    f("process.pe.company", "keyword"),
    f("process.pe.description", "keyword"),
    f("process.pe.product", "keyword"),
    f("process.pe.file_version", "keyword"),
    f("process.pe.imphash", "keyword"),
    f("process.parent.name", "keyword"),
    f("process.parent.pid", "long"),
    f("process.parent.executable", "keyword"),
    f("process.parent.command_line", "wildcard"),
    f("process.parent.entity_id", "keyword"),
    f("source.address", "keyword"),
    f("source.ip", "ip"),
    f("source.port", "long"),
    f("source.mac", "keyword"),
    f("source.bytes", "long"),
    f("source.packets", "long"),
    f("source.domain", "keyword"),
    f("destination.address", "keyword"),
    f("destination.ip", "ip"),
    f("destination.port", "long"),
    f("destination.mac", "keyword"),
    f("destination.bytes", "long"),
    f("destination.packets", "long"),
    f("destination.domain", "keyword"),
    f("network.transport", "keyword"),
    f("network.protocol", "keyword"),
    f("network.community_id", "keyword"),
    f("network.direction", "keyword"),
    f("network.type", "keyword"),
    f("network.iana_number", "keyword"),
    f("network.bytes", "long"),
    f("network.packets", "long"),
    f("network.vlan.id", "keyword"),
    f("network.inner.vlan.id", "keyword"),
    f("user.name", "keyword"),
    f("user.domain", "keyword"),
    f("user.id", "keyword"),
    f("user.target.name", "keyword"),
    f("user.target.domain", "keyword"),
    f("user.target.id", "keyword"),
    f("user.effective.name", "keyword"),
    f("user.effective.domain", "keyword"),
    f("user.effective.id", "keyword"),
    f("related.ip", "ip"),
    f("related.user", "keyword"),
    f("related.hosts", "keyword"),
    f("related.hash", "keyword"),
    f("error.type", "keyword"),
    f("error.message", "match_only_text"),
    f("group.name", "keyword"),
    f("group.domain", "keyword"),
    f("group.id", "keyword"),
    f("file.path", "keyword"),
    f("file.name", "keyword"),
    f("file.directory", "keyword"),
    f("file.extension", "keyword"),
    f("file.hash.md5", "keyword"),
    f("file.hash.sha1", "keyword"),
    f("file.hash.sha256", "keyword"),
    f("file.hash.sha512", "keyword"),
    f("file.pe.original_file_name", "keyword"),
    f("file.pe.company", "keyword"),
    f("file.pe.description", "keyword"),
    f("file.pe.product", "keyword"),
    f("file.pe.file_version", "keyword"),
    f("file.pe.imphash", "keyword"),
    f("registry.path", "keyword"),
    f("registry.hive", "keyword"),
    f("registry.key", "keyword"),
    f("registry.value", "keyword"),
    f("registry.data.strings", "wildcard"),
    f("registry.data.type", "keyword"),
    f("dns.question.name", "keyword"),
    f("dns.resolved_ip", "ip"),
    f("service.name", "keyword"),
    f("winlog.channel", "keyword"),
    f("winlog.event_id", "keyword"),
    f("winlog.provider_name", "keyword"),
    f("winlog.provider_guid", "keyword"),
    f("winlog.record_id", "keyword"),
    f("winlog.computer_name", "keyword"),
    f("winlog.version", "long"),
    f("winlog.task", "keyword"),
    f("winlog.opcode", "keyword"),
    f("winlog.keywords", "keyword"),
    f("winlog.activity_id", "keyword"),
    f("winlog.related_activity_id", "keyword"),
    f("winlog.process.pid", "long"),
    f("winlog.process.thread.id", "long"),
    f("winlog.user.identifier", "keyword"),
    f("winlog.logon.id", "keyword"),
    f("winlog.logon.type", "keyword"),
    f("winlog.logon.failure.reason", "keyword"),
    f("winlog.logon.failure.status", "keyword"),
    f("winlog.logon.failure.sub_status", "keyword"),
    f("winlog.event_data", "object"),
    f("winlog.user_data", "object"),
    f("powershell.command.name", "keyword"),
    f("powershell.command.type", "keyword"),
    f("powershell.engine.version", "keyword"),
    f("powershell.file.script_block_id", "keyword"),
    f("powershell.file.script_block_text", "match_only_text"),
    f("powershell.runspace_id", "keyword"),
    f("powershell.pipeline_id", "keyword"),
    f("powershell.sequence", "long"),
    f("powershell.total", "long"),
    f("flow.id", "keyword"),
    f("flow.state", "keyword"),
    f("flow.history", "keyword"),
    f("flow.direction_known", "boolean"),
    f("flow.final", "boolean"),
    f("flow.source_payload_bytes", "long"),
    f("flow.destination_payload_bytes", "long"),
    f("flow.mpls_label", "long"),
    f("flow.missed_bytes", "long"),
    f("device.manufacturer", "keyword"),
    f("device.model.name", "keyword"),
    f("device.model.identifier", "keyword"),
    f("device.product.name", "keyword"),
    f("device.product.id", "keyword"),
    f("device.vendor.name", "keyword"),
    f("device.vendor.id", "keyword"),
    f("device.serial_number", "keyword"),
    f("device.type", "keyword"),
    f("tls.version", "keyword"),
    f("tls.version_protocol", "keyword"),
    f("tls.client.subject", "keyword"),
    f("tls.client.issuer", "keyword"),
    f("tls.client.hash.sha1", "keyword"),
    f("tls.client.x509.subject.common_name", "keyword"),
    f("asset.roles", "keyword"),
    f("asset.vlan", "long"),
    f("asset.mac_vendor", "keyword"),
    f("asset.firmware", "keyword"),
    f("asset.first_seen", "date"),
    f("asset.last_seen", "date"),
    f("asset.identity", "flattened"),
    f("asset.reason", "keyword"),
    f("ot.protocol", "keyword"),
    f("ot.action", "keyword"),
    f("ot.function", "keyword"),
    f("ot.function_code", "long"),
    f("ot.unit", "long"),
    f("ot.transaction_id", "long"),
    f("ot.address", "long"),
    f("ot.quantity", "long"),
    f("ot.request_values", "long"),
    f("ot.response_values", "long"),
    f("ot.exception", "keyword"),
    f("ot.exception_code", "long"),
    f("ot.matched", "boolean"),
    f("ot.detail", "flattened"),
    f("ot.count", "long"),
    f("weir.class", "keyword"),
    f("weir.schema_version", "keyword"),
    f("weir.agent", "keyword"),
    f("weir.input.type", "keyword"),
    f("weir.input.peer_ip", "ip"),
    f("weir.input.peer_port", "long"),
    f("weir.stream", "keyword"),
    f("weir.sequence", "unsigned_long"),
    f("weir.session", "keyword"),
    f("weir.parse_error", "keyword"),
    f("weir.gap.stream", "keyword"),
    f("weir.gap.first_sequence", "unsigned_long"),
    f("weir.gap.last_sequence", "unsigned_long"),
    f("weir.gap.count", "long"),
    f("weir.gap.reason", "keyword"),
    f("weir.dropped", "long"),
];

/// The field named `name`, or the field whose subtree holds it (a `flattened` or `object`
/// field takes any key below it).
pub fn lookup(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| {
        f.name == name
            || (matches!(f.ty, "flattened" | "object")
                && name
                    .strip_prefix(f.name)
                    .is_some_and(|rest| rest.starts_with('.')))
    })
}

/// Elasticsearch `mappings` for [`FIELDS`]: nested `properties`, each leaf with its type.
/// `event.original` is kept but not indexed (as ECS and Elastic's integrations store it);
/// `labels.*` and any string Weir adds later map as `keyword`; `date_detection` is off so a
/// free-text value never turns a field into a date.
pub fn elasticsearch_mappings() -> Value {
    let mut root = Map::new();
    for field in FIELDS {
        let mut node = &mut root;
        let mut parts = field.name.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                node.insert(part.to_owned(), leaf(field));
                break;
            }
            let entry = node
                .entry(part.to_owned())
                .or_insert_with(|| json!({"properties": {}}));
            let Some(props) = entry
                .as_object_mut()
                .and_then(|o| o.get_mut("properties"))
                .and_then(Value::as_object_mut)
            else {
                break;
            };
            node = props;
        }
    }
    json!({
        "date_detection": false,
        "dynamic_templates": [
            {"labels": {"path_match": "labels.*", "mapping": {"type": "keyword"}}},
            {"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}
        ],
        "properties": root,
    })
}

fn leaf(field: &Field) -> Value {
    match (field.name, field.ty) {
        ("event.original", _) => json!({"type": "keyword", "index": false, "doc_values": false}),
        ("labels", _) => json!({"type": "object"}),
        (_, "keyword") => json!({"type": "keyword", "ignore_above": 1024}),
        (_, ty) => json!({"type": ty}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_once_and_mappings_nest_them() {
        let mut names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len(), "a field listed twice");
        let m = elasticsearch_mappings();
        assert_eq!(
            m["properties"]["source"]["properties"]["ip"],
            json!({"type": "ip"})
        );
        assert_eq!(
            m["properties"]["log"]["properties"]["syslog"]["properties"]["structured_data"],
            json!({"type": "flattened"})
        );
        assert_eq!(
            m["properties"]["weir"]["properties"]["gap"]["properties"]["count"],
            json!({"type": "long"})
        );
        assert_eq!(m["properties"]["@timestamp"], json!({"type": "date"}));
        assert_eq!(
            lookup("log.syslog.structured_data.origin@1.ip").map(|f| f.ty),
            Some("flattened")
        );
        assert_eq!(lookup("labels.zone").map(|f| f.ty), Some("object"));
        assert_eq!(lookup("log.syslog.structured"), None);
        assert_eq!(lookup("host.os.name"), None);
        assert_eq!(
            lookup("winlog.event_data.TargetUserName").map(|f| f.ty),
            Some("object")
        );
    }

    #[test]
    fn every_ecs_field_has_the_type_ecs_gives_it() {
        let ecs = crate::ecs::EcsSchema::load_bundled().expect("ecs_flat.yml");
        let custom = |name: &str| {
            crate::ecs::CUSTOM_NAMESPACES
                .iter()
                .any(|ns| name.split('.').next() == Some(ns))
        };
        for field in FIELDS.iter().filter(|f| !custom(f.name)) {
            let def = ecs
                .field(field.name)
                .unwrap_or_else(|| panic!("{} is not an ECS field", field.name));
            assert_eq!(def.ty, field.ty, "{}", field.name);
        }
    }
}

//! ECS conformance: is every field an event emits defined by ECS with a compatible type?
//!
//! The check loads Elastic's official `ecs_flat.yml` (vendored in `schemas/ecs/`, feature
//! `conformance`) and walks an event's JSON. A field fails when
//!
//! * it is not an ECS field and lies outside the custom namespaces [`CUSTOM_NAMESPACES`],
//! * its JSON type does not fit the ECS type (`long` wants an integer, `ip` a parseable address,
//!   `date` an RFC 3339 string, ...),
//! * it holds a value outside `allowed_values` (`event.kind`, `event.category`, `event.type`,
//!   `event.outcome`),
//! * ECS normalises it to an array (`normalize: [array]`) and it is not an array, or it is an
//!   array where ECS expects one value.

/// Top-level namespaces that are Weir's own or custom by design; the ECS check skips them.
pub const CUSTOM_NAMESPACES: [&str; 6] = ["winlog", "powershell", "flow", "ot", "asset", "weir"];

#[cfg(feature = "conformance")]
pub use conformance::*;

#[cfg(feature = "conformance")]
mod conformance {
    use std::collections::{HashMap, HashSet};
    use std::fmt;
    use std::path::Path;

    use serde::Deserialize;
    use serde_json::Value;

    use super::CUSTOM_NAMESPACES;

    /// One field definition from `ecs_flat.yml`, reduced to what the check needs.
    #[derive(Debug, Clone)]
    pub struct FieldDef {
        /// The ECS type (`keyword`, `long`, `ip`, `date`, `object`, `flattened`, ...).
        pub ty: String,
        /// `normalize` contains `array`.
        pub array: bool,
        /// `allowed_values` names, when ECS restricts the field.
        pub allowed: Option<Vec<String>>,
    }

    /// A conformance failure: the dotted field name and what is wrong with it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Violation {
        /// Dotted field name.
        pub field: String,
        /// What is wrong.
        pub problem: String,
    }

    impl fmt::Display for Violation {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}: {}", self.field, self.problem)
        }
    }

    #[derive(Deserialize)]
    struct RawField {
        #[serde(rename = "type")]
        ty: String,
        #[serde(default)]
        normalize: Vec<String>,
        #[serde(default)]
        allowed_values: Option<Vec<RawAllowed>>,
    }

    #[derive(Deserialize)]
    struct RawAllowed {
        name: String,
    }

    /// The loaded ECS field definitions.
    #[derive(Debug, Clone)]
    pub struct EcsSchema {
        fields: HashMap<String, FieldDef>,
        /// Every dotted prefix of a defined field ("event", "log", "log.syslog", ...).
        prefixes: HashSet<String>,
    }

    impl EcsSchema {
        /// Load the copy of `ecs_flat.yml` vendored with this crate.
        pub fn load_bundled() -> Result<EcsSchema, String> {
            Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("ecs/ecs_flat.yml"))
        }

        /// Load an `ecs_flat.yml`.
        pub fn load(path: &Path) -> Result<EcsSchema, String> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let raw: HashMap<String, RawField> = serde_yaml::from_str(&text)
                .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
            let mut prefixes = HashSet::new();
            let fields = raw
                .into_iter()
                .map(|(name, f)| {
                    let mut end = name.len();
                    while let Some(dot) = name[..end].rfind('.') {
                        prefixes.insert(name[..dot].to_string());
                        end = dot;
                    }
                    let def = FieldDef {
                        ty: f.ty,
                        array: f.normalize.iter().any(|n| n == "array"),
                        allowed: f
                            .allowed_values
                            .map(|a| a.into_iter().map(|v| v.name).collect()),
                    };
                    (name, def)
                })
                .collect();
            Ok(EcsSchema { fields, prefixes })
        }

        /// The definition of one dotted field.
        pub fn field(&self, name: &str) -> Option<&FieldDef> {
            self.fields.get(name)
        }

        /// Check one event (its JSON form). Returns every violation found.
        pub fn check(&self, event: &Value) -> Vec<Violation> {
            let mut out = Vec::new();
            match event {
                Value::Object(map) => {
                    for (key, value) in map {
                        self.walk(key, value, &mut out);
                    }
                }
                _ => out.push(Violation {
                    field: String::new(),
                    problem: "an event must be a JSON object".into(),
                }),
            }
            out
        }

        fn walk(&self, path: &str, value: &Value, out: &mut Vec<Violation>) {
            let top = path.split('.').next().unwrap_or(path);
            if CUSTOM_NAMESPACES.contains(&top) {
                return;
            }
            if let Some(def) = self.fields.get(path) {
                self.check_field(path, def, value, out);
                return;
            }
            match value {
                Value::Object(map) if self.prefixes.contains(path) => {
                    for (key, child) in map {
                        self.walk(&format!("{path}.{key}"), child, out);
                    }
                }
                _ => out.push(Violation {
                    field: path.to_string(),
                    problem: "not an ECS field and not in a custom namespace".into(),
                }),
            }
        }

        fn check_field(&self, path: &str, def: &FieldDef, value: &Value, out: &mut Vec<Violation>) {
            let mut fail = |problem: String| {
                out.push(Violation {
                    field: path.to_string(),
                    problem,
                })
            };
            match def.ty.as_str() {
                "object" => match value {
                    // An object with defined children is walked; one without (labels) is open.
                    Value::Object(map) if self.prefixes.contains(path) => {
                        for (key, child) in map {
                            self.walk(&format!("{path}.{key}"), child, out);
                        }
                    }
                    Value::Object(_) => {}
                    other => fail(format!("ECS type object, found {}", json_type(other))),
                },
                "flattened" => {
                    if !value.is_object() {
                        fail(format!("ECS type flattened, found {}", json_type(value)));
                    }
                }
                "nested" => {
                    let ok = match value {
                        Value::Array(items) => items.iter().all(Value::is_object),
                        Value::Object(_) => true,
                        _ => false,
                    };
                    if !ok {
                        fail("ECS type nested wants objects".into());
                    }
                }
                ty => {
                    let items: Vec<&Value> = match value {
                        Value::Array(items) => {
                            if !def.array {
                                fail("an array where ECS expects one value".into());
                            }
                            items.iter().collect()
                        }
                        single => {
                            if def.array {
                                fail("ECS normalises this field to an array".into());
                            }
                            vec![single]
                        }
                    };
                    for item in items {
                        if let Some(problem) = type_problem(ty, item) {
                            fail(problem);
                        }
                        if let (Some(allowed), Some(text)) = (&def.allowed, item.as_str()) {
                            if !allowed.iter().any(|a| a == text) {
                                fail(format!("{text:?} is not an allowed value"));
                            }
                        }
                    }
                }
            }
        }
    }

    fn type_problem(ty: &str, v: &Value) -> Option<String> {
        let ok = match ty {
            "keyword" | "constant_keyword" | "wildcard" | "text" | "match_only_text" => {
                v.is_string()
            }
            "date" => v
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            "ip" => v
                .as_str()
                .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
            "long" | "integer" | "short" | "byte" => v.is_i64() || v.is_u64(),
            "unsigned_long" => v.is_u64(),
            "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
            "boolean" => v.is_boolean(),
            "geo_point" => v.is_object() || v.is_string(),
            _ => false,
        };
        (!ok).then(|| format!("ECS type {ty}, found {} {v}", json_type(v)))
    }

    fn json_type(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        fn schema() -> EcsSchema {
            EcsSchema::load_bundled().expect("bundled ecs_flat.yml loads")
        }

        #[test]
        fn a_weir_event_conforms() {
            let mut e = crate::Event::new(crate::EventClass::Syslog, chrono::Utc::now());
            e.event.category = vec!["network".into()];
            e.event.kind_type = vec!["connection".into()];
            e.relate_ip("192.0.2.7");
            let v: Value = serde_json::from_slice(&e.to_json()).expect("json");
            assert_eq!(schema().check(&v), vec![]);
        }

        #[test]
        fn each_kind_of_violation_is_caught() {
            let s = schema();
            let cases = [
                (json!({"evnt": {"kind": "event"}}), "evnt"),
                (json!({"event": {"kind": "bogus"}}), "event.kind"),
                (json!({"event": {"category": "network"}}), "event.category"),
                (
                    json!({"event": {"category": ["networking"]}}),
                    "event.category",
                ),
                (json!({"process": {"pid": "12"}}), "process.pid"),
                (json!({"source": {"ip": "not-an-ip"}}), "source.ip"),
                (json!({"@timestamp": "yesterday"}), "@timestamp"),
                (json!({"host": {"ip": "192.0.2.1"}}), "host.ip"),
                (json!({"message": ["a", "b"]}), "message"),
                (
                    json!({"log": {"syslog": {"facility": {"colour": 1}}}}),
                    "log.syslog.facility.colour",
                ),
            ];
            for (event, field) in cases {
                let v = s.check(&event);
                assert_eq!(v.len(), 1, "{event}: {v:?}");
                assert_eq!(v[0].field, field, "{event}");
            }
        }

        #[test]
        fn custom_namespaces_and_open_objects_pass() {
            let v = json!({
                "weir": {"anything": [1, {"x": 2}]},
                "ot": {"protocol": "modbus"},
                "winlog": {"event_id": "4624"},
                "labels": {"site": "plant-a"},
                "log": {"syslog": {"structured_data": {"a@1": {"b": "c"}}}}
            });
            assert_eq!(schema().check(&v), vec![]);
        }
    }
}

//! The Elasticsearch assets and Kibana saved objects shipped in `integrations/elasticsearch/`
//! and `integrations/kibana/`: they are exactly what the code generates (the sink installs the
//! same bodies), every field Weir emits is mapped in them with its type, and every field,
//! reference and panel of the Kibana objects resolves.
//!
//! `WEIR_BLESS=1 cargo test -p weir-integrations --test elastic_content` rewrites the files
//! after a schema change.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use weir_integrations::elasticsearch::{assets, Target};
use weir_integrations::kibana;
use weir_schemas::fields::{lookup, FIELDS};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn bless() -> bool {
    std::env::var_os("WEIR_BLESS").is_some()
}

fn default_target() -> Target {
    Target::DataStream {
        namespace: "default".into(),
    }
}

/// The committed file equals `want` (or is rewritten when blessing).
fn same_as_committed(path: &Path, want: &str) {
    if bless() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, want).expect("write");
        return;
    }
    let have = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (WEIR_BLESS=1 writes it)", path.display()));
    assert!(
        have == want,
        "{} differs from what the code generates; WEIR_BLESS=1 rewrites it",
        path.display()
    );
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(&weir_integrations::canonical_json(v)).expect("json");
    s.push('\n');
    s
}

#[test]
fn the_shipped_elasticsearch_assets_are_what_the_sink_installs() {
    let dir = root().join("elasticsearch");
    let all = assets(&default_target());
    assert_eq!(all.len(), 4);
    for a in &all {
        same_as_committed(&dir.join(format!("{}.json", a.path)), &pretty(&a.body));
    }
    // Nothing else lies in the directory that the code no longer generates.
    let mut files = BTreeSet::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                files.insert(p.strip_prefix(&dir).expect("under").to_path_buf());
            }
        }
    }
    let want: BTreeSet<PathBuf> = all
        .iter()
        .map(|a| PathBuf::from(format!("{}.json", a.path)))
        .collect();
    assert_eq!(files, want);
}

/// Where `name` sits in a mappings tree: its leaf mapping.
fn mapping_of<'a>(mappings: &'a Value, name: &str) -> Option<&'a Value> {
    let mut node = &mappings["properties"];
    let parts: Vec<&str> = name.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let m = node.get(part)?;
        if i + 1 == parts.len() {
            return Some(m);
        }
        node = m.get("properties")?;
    }
    None
}

/// `name` sits below a field mapped as `object` (its keys come through the dynamic templates).
fn dynamic_parent(mappings: &Value, name: &str) -> bool {
    let strings = mappings["dynamic_templates"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["strings_as_keyword"]["mapping"]["type"] == "keyword");
    let mut prefix = name;
    while let Some((head, _)) = prefix.rsplit_once('.') {
        if mapping_of(mappings, head).is_some_and(|m| m["type"] == "object") {
            return strings;
        }
        prefix = head;
    }
    false
}

fn committed(path: &str) -> Value {
    let p = root().join("elasticsearch").join(path);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("committed asset")).expect("JSON")
}

#[test]
fn every_field_weir_emits_is_mapped_with_its_type_in_the_shipped_template() {
    let component = committed("_component_template/weir@mappings.json");
    let mappings = &component["template"]["mappings"];
    for f in FIELDS {
        let m = mapping_of(mappings, f.name)
            .unwrap_or_else(|| panic!("{} is not in weir@mappings", f.name));
        assert_eq!(m["type"], f.ty, "{}", f.name);
    }
    // And what the encoders actually wrote in the syslog golden files reaches a typed leaf
    // (the parsers' own tests hold their Windows and capture output to the same list).
    let expected = root().join("../samples/syslog/expected");
    let mut seen = 0;
    for e in std::fs::read_dir(&expected).expect("golden dir") {
        let text = std::fs::read_to_string(e.expect("entry").path()).expect("golden");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("golden JSON");
            let mut stack = vec![(String::new(), &v)];
            while let Some((path, v)) = stack.pop() {
                match v {
                    Value::Object(o) if lookup(&path).is_none_or(|f| f.ty == "object") => {
                        for (k, c) in o {
                            let p = if path.is_empty() {
                                k.clone()
                            } else {
                                format!("{path}.{k}")
                            };
                            stack.push((p, c));
                        }
                    }
                    _ => {
                        // Mapped itself, or below an `object` (labels.*, winlog.event_data.*)
                        // whose keys the dynamic templates map.
                        let covered = mapping_of(mappings, &path).is_some()
                            || dynamic_parent(mappings, &path);
                        assert!(covered, "{path} is emitted but not mapped");
                        seen += 1;
                    }
                }
            }
        }
    }
    assert!(seen > 1_000, "the golden files were read ({seen} leaves)");
    // The pipeline and settings the index template composes.
    let settings = committed("_component_template/weir@settings.json");
    assert_eq!(
        settings["template"]["settings"]["index"]["default_pipeline"],
        "weir@ingest"
    );
    let template = committed("_index_template/weir.json");
    assert_eq!(
        template["index_patterns"],
        serde_json::json!(["logs-weir.*-*"])
    );
    assert_eq!(
        template["composed_of"],
        serde_json::json!(["weir@mappings", "weir@settings", "weir@custom"])
    );
}

#[test]
fn the_shipped_kibana_objects_are_generated_and_resolve() {
    let text = kibana::ndjson();
    same_as_committed(&root().join("kibana/weir.ndjson"), &text);
    let objects: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ids: HashMap<(String, String), &Value> = objects
        .iter()
        .map(|o| {
            (
                (
                    o["type"].as_str().expect("type").to_owned(),
                    o["id"].as_str().expect("id").to_owned(),
                ),
                o,
            )
        })
        .collect();
    assert_eq!(ids.len(), objects.len(), "ids are unique");
    for o in &objects {
        assert!(o["attributes"]["title"].is_string(), "{o}");
        assert!(o["migrationVersion"].is_object(), "{o}");
        for r in o["references"].as_array().expect("references") {
            let key = (
                r["type"].as_str().expect("type").to_owned(),
                r["id"].as_str().expect("id").to_owned(),
            );
            assert!(
                ids.contains_key(&key),
                "{} refers to missing {key:?}",
                o["id"]
            );
        }
    }
    let view = ids[&("index-pattern".to_owned(), kibana::DATA_VIEW_ID.to_owned())];
    assert_eq!(view["attributes"]["title"], "logs-weir.*");
    assert_eq!(view["attributes"]["timeFieldName"], "@timestamp");

    // Every Lens column reads a field Weir maps, with an aggregation its type allows.
    let mut lens = 0;
    for o in objects.iter().filter(|o| o["type"] == "lens") {
        lens += 1;
        let state = &o["attributes"]["state"];
        let layers = state["datasourceStates"]["indexpattern"]["layers"]
            .as_object()
            .expect("layers");
        for (layer, l) in layers {
            let name = format!("indexpattern-datasource-layer-{layer}");
            assert!(
                o["references"]
                    .as_array()
                    .expect("refs")
                    .iter()
                    .any(|r| r["name"] == name.as_str()),
                "{}: layer {layer} has no data view reference",
                o["id"]
            );
            let order: Vec<&str> = l["columnOrder"]
                .as_array()
                .expect("order")
                .iter()
                .map(|c| c.as_str().expect("id"))
                .collect();
            let columns = l["columns"].as_object().expect("columns");
            assert_eq!(order.len(), columns.len());
            for (id, c) in columns {
                assert!(order.contains(&id.as_str()));
                let op = c["operationType"].as_str().expect("op");
                let field = c["sourceField"].as_str().expect("sourceField");
                if op == "count" {
                    assert_eq!(field, "Records");
                    continue;
                }
                let f = lookup(field)
                    .unwrap_or_else(|| panic!("{}: {field} is not a Weir field", o["id"]));
                let allowed: &[&str] = match op {
                    "date_histogram" => &["date"],
                    "terms" | "unique_count" => {
                        &["keyword", "ip", "long", "unsigned_long", "boolean"]
                    }
                    "sum" => &["long", "unsigned_long"],
                    "last_value" => &["keyword", "ip", "long", "unsigned_long", "date", "boolean"],
                    other => panic!("{}: no check for {other}", o["id"]),
                };
                assert!(
                    allowed.contains(&f.ty),
                    "{}: {op} over {field} ({})",
                    o["id"],
                    f.ty
                );
            }
            // The chart draws only columns that exist.
            let vis = &state["visualization"];
            let mut drawn = Vec::new();
            for key in ["accessor", "xAccessor", "splitAccessor"] {
                drawn.extend(vis[key].as_str());
            }
            for l in vis["layers"].as_array().into_iter().flatten() {
                for key in ["xAccessor", "splitAccessor"] {
                    drawn.extend(l[key].as_str());
                }
                drawn.extend(
                    l["accessors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                );
            }
            drawn.extend(
                vis["columns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["columnId"].as_str()),
            );
            assert!(!drawn.is_empty(), "{}", o["id"]);
            for d in drawn {
                assert!(columns.contains_key(d), "{}: draws missing {d}", o["id"]);
            }
        }
        // The KQL names only Weir fields.
        let query = state["query"]["query"].as_str().expect("query");
        for field in kql_fields(query) {
            assert!(lookup(&field).is_some(), "{}: query field {field}", o["id"]);
        }
    }
    assert_eq!(lens, kibana::visualisations().len());

    let search = ids[&("search".to_owned(), "weir-notable-events".to_owned())];
    for c in search["attributes"]["columns"].as_array().expect("columns") {
        let c = c.as_str().expect("column");
        assert!(lookup(c).is_some(), "saved search column {c}");
    }
    let source: Value = serde_json::from_str(
        search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
            .as_str()
            .expect("searchSourceJSON"),
    )
    .expect("searchSourceJSON is JSON");
    assert_eq!(
        source["indexRefName"],
        "kibanaSavedObjectMeta.searchSourceJSON.index"
    );

    // The dashboard: every panel refers to an object in the file; the grid is 48 wide and no
    // two panels overlap.
    let dash = ids[&("dashboard".to_owned(), kibana::DASHBOARD_ID.to_owned())];
    let panels: Vec<Value> = serde_json::from_str(
        dash["attributes"]["panelsJSON"]
            .as_str()
            .expect("panelsJSON"),
    )
    .expect("panelsJSON is JSON");
    assert_eq!(panels.len(), lens + 1, "every visualisation and the search");
    let refs = dash["references"].as_array().expect("references");
    let mut cells = std::collections::HashSet::new();
    for p in &panels {
        let name = p["panelRefName"].as_str().expect("panelRefName");
        let r = refs
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("panel {name} has no reference"));
        assert_eq!(r["type"], p["type"]);
        let g = &p["gridData"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().expect("grid"));
        assert!(x + w <= 48, "{name} is off the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{name} overlaps another panel");
            }
        }
    }
}

/// The field names in a KQL query (`name : value`).
fn kql_fields(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_string = false;
    let mut word = String::new();
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            in_string = !in_string;
            word.clear();
            continue;
        }
        if in_string {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '@' {
            word.push(c);
            continue;
        }
        if c == ' ' {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if chars.peek() == Some(&':') && !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            word.clear();
            continue;
        }
        if c == ':' && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        word.clear();
    }
    out
}

#[test]
fn kql_fields_are_found() {
    assert_eq!(
        kql_fields(r#"weir.class : "ot" and ot.action : ("write" or "a : b")"#),
        ["weir.class", "ot.action"]
    );
}

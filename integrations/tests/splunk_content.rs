//! The Splunk add-on in `integrations/splunk/TA-weir` parses as Splunk reads .conf files, and
//! stays in step with the event schema: every sourcetype the HEC sink emits by default has a
//! props stanza, every ECS field an alias, eval, lookup or eventtype names exists in
//! `weir_schemas::fields::FIELDS`, every lookup has its transform, file and columns, and every
//! tagged eventtype is defined.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Conf = BTreeMap<String, BTreeMap<String, String>>;

fn app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("splunk/TA-weir")
}

/// Splunk's .conf syntax: `[stanza]`, `key = value`, `#` comments, a trailing `\` continues
/// the value on the next line. Duplicate stanzas or keys are errors here (Splunk would
/// silently keep the last one).
fn parse(path: &Path) -> Conf {
    let text = std::fs::read_to_string(path).unwrap();
    let mut conf = Conf::new();
    // Keys before any header belong to the global stanza, named "" (as `[]` also is).
    let mut stanza = String::new();
    let mut declared = BTreeSet::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let mut line = raw.trim_end().to_owned();
        while line.ends_with('\\') {
            line.pop();
            let (_, next) = lines.next().expect("continuation at end of file");
            line.push('\n');
            line.push_str(next.trim_end());
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .unwrap_or_else(|| panic!("{}:{}: unclosed stanza header", path.display(), n + 1));
            stanza = name.to_owned();
            assert!(
                declared.insert(stanza.clone()),
                "{}: stanza [{stanza}] twice",
                path.display()
            );
            conf.entry(stanza.clone()).or_default();
            continue;
        }
        let (k, v) = t
            .split_once('=')
            .unwrap_or_else(|| panic!("{}:{}: not key = value: {t}", path.display(), n + 1));
        let (k, v) = (k.trim().to_owned(), v.trim().to_owned());
        assert!(!k.is_empty(), "{}:{}: empty key", path.display(), n + 1);
        let prior = conf.entry(stanza.clone()).or_default().insert(k.clone(), v);
        assert!(
            prior.is_none(),
            "{}: [{stanza}] {k} set twice",
            path.display()
        );
    }
    conf
}

fn schema_fields() -> BTreeSet<&'static str> {
    weir_schemas::fields::FIELDS
        .iter()
        .map(|f| f.name)
        .collect()
}

/// Field names an eval expression refers to: `'single.quoted'` tokens.
fn eval_refs(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('\'') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('\'') else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + 1..];
    }
    out
}

#[test]
fn the_add_on_parses_and_matches_the_schema() {
    let fields = schema_fields();
    let dir = app();
    let app_conf = parse(&dir.join("default/app.conf"));
    assert_eq!(app_conf["package"]["id"], "TA-weir");
    let props = parse(&dir.join("default/props.conf"));
    let transforms = parse(&dir.join("default/transforms.conf"));
    let eventtypes = parse(&dir.join("default/eventtypes.conf"));
    let tags = parse(&dir.join("default/tags.conf"));
    let meta = parse(&dir.join("metadata/default.meta"));
    assert_eq!(meta[""]["export"], "system");

    // Every class's default HEC sourcetype (`weir:{class}`) has its stanza, read as JSON.
    for class in weir_schemas::EventClass::ALL {
        let st = format!("weir:{}", class.as_str());
        let stanza = props
            .get(&st)
            .unwrap_or_else(|| panic!("props.conf has no [{st}]"));
        assert_eq!(stanza["KV_MODE"], "json", "[{st}]");
        assert_eq!(stanza["SHOULD_LINEMERGE"], "false", "[{st}]");
    }

    // Fields computed by this add-on (aliases, evals, lookup outputs) may be used later on.
    let mut computed: BTreeSet<String> = BTreeSet::new();
    let mut checked = 0;
    for (st, stanza) in &props {
        for (k, v) in stanza {
            if k.starts_with("FIELDALIAS-") {
                let (from, to) = v.split_once(" AS ").unwrap_or_else(|| panic!("[{st}] {k}"));
                assert!(
                    fields.contains(from.trim()),
                    "[{st}] {k}: {from} is not a Weir field"
                );
                computed.insert(to.trim().to_owned());
                checked += 1;
            } else if let Some(name) = k.strip_prefix("EVAL-") {
                for r in eval_refs(v) {
                    assert!(
                        fields.contains(r.as_str()) || computed.contains(&r),
                        "[{st}] {k}: '{r}' is not a Weir field"
                    );
                    checked += 1;
                }
                computed.insert(name.to_owned());
            } else if k.starts_with("LOOKUP-") {
                // `<transform> <column> AS <event field> OUTPUT <column>[ AS <name>], ...`
                let mut words = v.split_whitespace();
                let table = words.next().unwrap();
                let t = transforms
                    .get(table)
                    .unwrap_or_else(|| panic!("[{st}] {k}: no [{table}] in transforms.conf"));
                let csv = std::fs::read_to_string(dir.join("lookups").join(&t["filename"]))
                    .unwrap_or_else(|_| panic!("[{table}] filename {} missing", t["filename"]));
                let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
                let rows: Vec<Vec<&str>> = csv
                    .lines()
                    .skip(1)
                    .map(|l| l.split(',').collect())
                    .collect();
                assert!(
                    rows.iter().all(|r| r.len() == header.len()),
                    "{}: ragged rows",
                    t["filename"]
                );
                let (input, output) = v[table.len()..].split_once("OUTPUT").unwrap();
                let (column, event_field) = input.trim().split_once(" AS ").unwrap();
                assert!(
                    header.contains(&column.trim()),
                    "{column} not in {header:?}"
                );
                assert!(
                    fields.contains(event_field.trim()),
                    "{event_field} is not a Weir field"
                );
                for out in output.split(',') {
                    let out = out.trim();
                    let (col, name) = out.split_once(" AS ").unwrap_or((out, out));
                    assert!(header.contains(&col.trim()), "{col} not in {header:?}");
                    computed.insert(name.trim().to_owned());
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 80, "only {checked} references checked");

    // The OT action lookup covers the whole action vocabulary of the sensor.
    let csv = std::fs::read_to_string(dir.join("lookups/weir_ot_actions.csv")).unwrap();
    let actions: BTreeSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    for a in weir_parsers::ot::Action::ALL {
        assert!(
            actions.contains(a.as_str()),
            "weir_ot_actions.csv lacks {}",
            a.as_str()
        );
    }
    assert_eq!(actions.len(), weir_parsers::ot::Action::ALL.len());

    // Eventtypes search sourcetypes that exist and Weir fields; every tagged eventtype exists.
    for (name, et) in eventtypes.iter().filter(|(n, _)| !n.is_empty()) {
        let search = &et["search"];
        let st = search
            .split("sourcetype=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("[{name}] names no sourcetype"));
        assert!(
            props.contains_key(st),
            "[{name}]: sourcetype {st} has no props"
        );
        for word in search.split_whitespace() {
            let field = word.split(['=', ' ']).next().unwrap();
            if field.contains('.') && !field.starts_with('"') && !field.starts_with('(') {
                assert!(
                    fields.contains(field),
                    "[{name}]: {field} is not a Weir field"
                );
            }
        }
    }
    for stanza in tags.keys().filter(|k| !k.is_empty()) {
        let et = stanza
            .strip_prefix("eventtype=")
            .unwrap_or_else(|| panic!("tags.conf: [{stanza}] is not an eventtype stanza"));
        assert!(
            eventtypes.contains_key(et),
            "tags.conf: eventtype {et} is not defined"
        );
        assert!(tags[stanza]
            .values()
            .all(|v| v == "enabled" || v == "disabled"));
    }
}

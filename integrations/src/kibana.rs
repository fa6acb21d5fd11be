/*!
Kibana saved objects for Weir's data streams: a data view, Lens visualisations, a saved
search and the *Weir: diode health, OT actions, assets* dashboard, generated from a compact
description so every field they name is checked against [`weir_schemas::fields`] (the test
`integrations/tests/siem_content.rs` holds `integrations/kibana/weir.ndjson` to this output).

The objects are written in the 7.14 saved-object format (`migrationVersion` 7.14.0, the
`indexpattern` Lens datasource, `panelRefName` panels): Kibana migrates older objects forward
on import, so one file imports into every Kibana from 7.14 to 8.x ("Saved objects → Import",
or `POST /api/saved_objects/_import`), whereas an object in a newer format than the Kibana is
refused.
*/

use serde_json::{json, Value};

use crate::canonical_json;

/// The data view's id (stable, so a re-import replaces rather than duplicates).
pub const DATA_VIEW_ID: &str = "weir-logs";
/// The dashboard's id.
pub const DASHBOARD_ID: &str = "weir-overview";

/// A panel's place on the dashboard grid (48 columns wide): x, y, width, height.
pub type Grid = (u32, u32, u32, u32);

/// One Lens column.
#[derive(Clone, Copy, Debug)]
pub enum Column {
    /// `@timestamp` in automatic intervals.
    Time,
    /// The top values of a field.
    Top(&'static str, u32),
    /// The number of documents.
    Count,
    /// The sum of a numeric field.
    Sum(&'static str),
    /// The number of distinct values.
    Distinct(&'static str),
    /// The latest value (by `@timestamp`).
    Latest(&'static str),
}

impl Column {
    /// The field it reads, if any.
    pub fn field(self) -> Option<&'static str> {
        match self {
            Column::Time => Some("@timestamp"),
            Column::Count => None,
            Column::Top(f, _) | Column::Sum(f) | Column::Distinct(f) | Column::Latest(f) => Some(f),
        }
    }

    fn bucketed(self) -> bool {
        matches!(self, Column::Time | Column::Top(..))
    }
}

/// How a visualisation draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    /// Stacked bars over time: columns time, count (or a metric), then an optional split.
    Bars,
    /// One number.
    Metric,
    /// A table: bucket columns as rows, metrics as columns.
    Table,
}

/// One Lens visualisation.
#[derive(Clone, Debug)]
pub struct Vis {
    /// Saved-object id.
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Description shown in the panel's menu.
    pub description: &'static str,
    /// Drawing.
    pub chart: Chart,
    /// KQL query.
    pub query: &'static str,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Grid position.
    pub grid: Grid,
}

/// The dashboard's visualisations.
pub fn visualisations() -> Vec<Vis> {
    use Column::*;
    const CHANGES: &str = r#"weir.class : "ot" and ot.action : ("write" or "control" or "program_download" or "program_upload" or "mode_change" or "restart" or "time_set" or "firmware")"#;
    vec![
        Vis {
            id: "weir-diode-lost",
            title: "Diode: events lost in gaps",
            description: "Sum of weir.gap.count over diode-gap records: events the agent sent that never arrived. Anything but 0 needs an answer (docs/operations.md, Gaps).",
            chart: Chart::Metric,
            query: r#"event.action : "diode-gap""#,
            columns: vec![Sum("weir.gap.count")],
            grid: (0, 0, 12, 8),
        },
        Vis {
            id: "weir-diode-events",
            title: "Diode and agent events",
            description: "Weir's own events (weir.class: weir) by event.action: session starts, gaps, settings mismatches, capture drops, spool overflow, WEC host liveness.",
            chart: Chart::Bars,
            query: r#"weir.class : "weir""#,
            columns: vec![Time, Count, Top("event.action", 10)],
            grid: (12, 0, 36, 8),
        },
        Vis {
            id: "weir-events-by-class",
            title: "Events by class",
            description: "Everything the receiver delivered, by weir.class (syslog, windows, flow, ot, asset, notable, weir).",
            chart: Chart::Bars,
            query: "",
            columns: vec![Time, Count, Top("weir.class", 7)],
            grid: (0, 8, 24, 12),
        },
        Vis {
            id: "weir-agents",
            title: "Agents and streams",
            description: "Events per agent and stream (weir.agent, weir.stream) and the latest sequence number each reached.",
            chart: Chart::Table,
            query: "",
            columns: vec![Top("weir.agent", 20), Top("weir.stream", 20), Count, Latest("weir.sequence")],
            grid: (24, 8, 24, 12),
        },
        Vis {
            id: "weir-ot-actions",
            title: "OT actions",
            description: "Industrial protocol transactions by ot.action (read, write, control, program_download, mode_change, ...) across Modbus, DNP3, S7comm, EtherNet/IP, IEC 104, BACnet, OPC UA and MQTT.",
            chart: Chart::Bars,
            query: r#"weir.class : "ot""#,
            columns: vec![Time, Count, Top("ot.action", 10)],
            grid: (0, 20, 24, 12),
        },
        Vis {
            id: "weir-ot-protocols",
            title: "OT protocols",
            description: "Industrial protocol transactions by ot.protocol.",
            chart: Chart::Bars,
            query: r#"weir.class : "ot""#,
            columns: vec![Time, Count, Top("ot.protocol", 10)],
            grid: (24, 20, 24, 12),
        },
        Vis {
            id: "weir-ot-changes",
            title: "Changes to controllers",
            description: "Who wrote to, controlled, reprogrammed, restarted or changed the mode of which device: the transactions an OT SOC reviews first.",
            chart: Chart::Table,
            query: CHANGES,
            columns: vec![Top("destination.ip", 50), Top("source.ip", 50), Top("ot.protocol", 10), Top("ot.action", 10), Count],
            grid: (0, 32, 48, 14),
        },
        Vis {
            id: "weir-notables",
            title: "Notable events",
            description: "Weir's detections (weir.class: notable): new assets and conversations against the baseline, program downloads, mode changes, firmware, restarts.",
            chart: Chart::Bars,
            query: r#"weir.class : "notable""#,
            columns: vec![Time, Count, Top("event.action", 10)],
            grid: (0, 46, 24, 12),
        },
        Vis {
            id: "weir-assets-count",
            title: "Assets seen",
            description: "Distinct IP addresses in asset observations (weir.class: asset).",
            chart: Chart::Metric,
            query: r#"weir.class : "asset""#,
            columns: vec![Distinct("host.ip")],
            grid: (24, 46, 12, 12),
        },
        Vis {
            id: "weir-assets-vendors",
            title: "Assets by NIC vendor",
            description: "Asset observations by the vendor of their MAC address (OUI).",
            chart: Chart::Table,
            query: r#"weir.class : "asset""#,
            columns: vec![Top("asset.mac_vendor", 20), Distinct("host.ip")],
            grid: (36, 46, 12, 12),
        },
        Vis {
            id: "weir-assets",
            title: "Asset inventory",
            description: "Every asset with its latest roles, MAC vendor, device identity (from Modbus device identification, S7 SZL, CIP ListIdentity) and when it was last seen.",
            chart: Chart::Table,
            query: r#"weir.class : "asset""#,
            columns: vec![
                Top("host.ip", 500),
                Latest("asset.roles"),
                Latest("asset.mac_vendor"),
                Latest("device.manufacturer"),
                Latest("device.model.name"),
                Latest("asset.vlan"),
                Latest("asset.last_seen"),
            ],
            grid: (0, 58, 48, 16),
        },
    ]
}

/// The saved search's columns.
pub const NOTABLE_COLUMNS: [&str; 6] = [
    "event.action",
    "source.ip",
    "destination.ip",
    "ot.protocol",
    "ot.action",
    "message",
];

fn data_type(field: &str) -> &'static str {
    match weir_schemas::fields::lookup(field).map(|f| f.ty) {
        Some("ip") => "ip",
        Some("date") => "date",
        Some("long" | "unsigned_long" | "integer" | "float" | "double") => "number",
        Some("boolean") => "boolean",
        _ => "string",
    }
}

fn column_json(c: Column, metric_id: Option<&str>) -> Value {
    match c {
        Column::Time => json!({
            "label": "@timestamp", "dataType": "date", "operationType": "date_histogram",
            "sourceField": "@timestamp", "isBucketed": true, "scale": "interval",
            "params": {"interval": "auto"},
        }),
        Column::Top(f, size) => {
            let mut c = json!({
                "label": format!("Top values of {f}"), "dataType": data_type(f),
                "operationType": "terms", "sourceField": f, "isBucketed": true,
                "scale": "ordinal",
                "params": {"size": size, "orderDirection": "desc", "otherBucket": true, "missingBucket": false},
            });
            c["params"]["orderBy"] = match metric_id {
                Some(id) => json!({"type": "column", "columnId": id}),
                None => json!({"type": "alphabetical"}),
            };
            c
        }
        Column::Count => json!({
            "label": "Count of records", "dataType": "number", "operationType": "count",
            "sourceField": "Records", "isBucketed": false, "scale": "ratio",
        }),
        Column::Sum(f) => json!({
            "label": format!("Sum of {f}"), "dataType": "number", "operationType": "sum",
            "sourceField": f, "isBucketed": false, "scale": "ratio",
        }),
        Column::Distinct(f) => json!({
            "label": format!("Unique count of {f}"), "dataType": "number",
            "operationType": "unique_count", "sourceField": f, "isBucketed": false,
            "scale": "ratio",
        }),
        Column::Latest(f) => json!({
            "label": format!("Last value of {f}"), "dataType": data_type(f),
            "operationType": "last_value", "sourceField": f, "isBucketed": false,
            "scale": if data_type(f) == "number" { "ratio" } else { "ordinal" },
            "params": {"sortField": "@timestamp"},
        }),
    }
}

fn lens(v: &Vis) -> Value {
    let layer = format!("{}-layer", v.id);
    let ids: Vec<String> = (0..v.columns.len())
        .map(|i| format!("{}-c{i}", v.id))
        .collect();
    let metric_id = v
        .columns
        .iter()
        .zip(&ids)
        .find(|(c, _)| !c.bucketed())
        .map(|(_, id)| id.clone());
    let mut columns = serde_json::Map::new();
    for (c, id) in v.columns.iter().zip(&ids) {
        columns.insert(id.clone(), column_json(*c, metric_id.as_deref()));
    }
    let visualization = match v.chart {
        Chart::Metric => json!({"layerId": layer, "accessor": ids.first()}),
        Chart::Table => json!({
            "layerId": layer,
            "columns": ids.iter().map(|id| json!({"columnId": id})).collect::<Vec<_>>(),
        }),
        Chart::Bars => {
            let mut l = json!({
                "layerId": layer, "seriesType": "bar_stacked", "xAccessor": ids.first(),
                "accessors": [ids.get(1)], "position": "top", "showGridlines": false,
            });
            if let Some(split) = ids.get(2) {
                l["splitAccessor"] = json!(split);
            }
            json!({
                "layers": [l], "legend": {"isVisible": true, "position": "right"},
                "preferredSeriesType": "bar_stacked", "valueLabels": "hide",
                "fittingFunction": "None",
            })
        }
    };
    let kind = match v.chart {
        Chart::Metric => "lnsMetric",
        Chart::Table => "lnsDatatable",
        Chart::Bars => "lnsXY",
    };
    json!({
        "id": v.id,
        "type": "lens",
        "migrationVersion": {"lens": "7.14.0"},
        "attributes": {
            "title": v.title,
            "description": v.description,
            "visualizationType": kind,
            "state": {
                "datasourceStates": {"indexpattern": {"layers": {
                    layer.clone(): {"columnOrder": ids, "columns": columns, "incompleteColumns": {}},
                }}},
                "visualization": visualization,
                "query": {"query": v.query, "language": "kuery"},
                "filters": [],
            },
        },
        "references": [
            {"type": "index-pattern", "id": DATA_VIEW_ID, "name": "indexpattern-datasource-current-indexpattern"},
            {"type": "index-pattern", "id": DATA_VIEW_ID, "name": format!("indexpattern-datasource-layer-{layer}")},
        ],
    })
}

/// Every saved object, in import order (the data view first, the dashboard last).
pub fn saved_objects() -> Vec<Value> {
    let vis = visualisations();
    let mut out = vec![json!({
        "id": DATA_VIEW_ID,
        "type": "index-pattern",
        "migrationVersion": {"index-pattern": "7.11.0"},
        "attributes": {"title": "logs-weir.*", "timeFieldName": "@timestamp"},
        "references": [],
    })];
    out.extend(vis.iter().map(lens));
    let search_source = json!({
        "query": {"query": "weir.class : \"notable\"", "language": "kuery"},
        "filter": [],
        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
    });
    out.push(json!({
        "id": "weir-notable-events",
        "type": "search",
        "migrationVersion": {"search": "7.9.3"},
        "attributes": {
            "title": "Weir: notable events",
            "description": "Weir's detections, newest first.",
            "columns": NOTABLE_COLUMNS,
            "sort": [["@timestamp", "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": canonical_json(&search_source).to_string()},
        },
        "references": [
            {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": DATA_VIEW_ID},
        ],
    }));
    let mut panels = Vec::new();
    let mut references = Vec::new();
    // The saved search: the notable events themselves, under the charts.
    let search_panel: Grid = (0, 74, 48, 16);
    let all: Vec<(&str, &str, Grid)> = vis
        .iter()
        .map(|v| ("lens", v.id, v.grid))
        .chain([("search", "weir-notable-events", search_panel)])
        .collect();
    for (i, (kind, id, (x, y, w, h))) in all.into_iter().enumerate() {
        panels.push(json!({
            "version": "7.14.0",
            "type": kind,
            "gridData": {"x": x, "y": y, "w": w, "h": h, "i": (i + 1).to_string()},
            "panelIndex": (i + 1).to_string(),
            "embeddableConfig": {"enhancements": {}},
            "panelRefName": format!("panel_{i}"),
        }));
        references.push(json!({"name": format!("panel_{i}"), "type": kind, "id": id}));
    }
    out.push(json!({
        "id": DASHBOARD_ID,
        "type": "dashboard",
        "migrationVersion": {"dashboard": "7.14.0"},
        "attributes": {
            "title": "Weir: diode health, OT actions, assets",
            "description": "Weir's events in Elasticsearch: losses across the diode, the agents' own events, OT transactions and changes to controllers, notable events and the asset inventory.",
            "hits": 0,
            "panelsJSON": canonical_json(&Value::Array(panels)).to_string(),
            "optionsJSON": canonical_json(&json!({"useMargins": true, "syncColors": false, "hidePanelTitles": false})).to_string(),
            "timeRestore": true,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "refreshInterval": {"pause": false, "value": 60_000},
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": canonical_json(&json!({"query": {"query": "", "language": "kuery"}, "filter": []})).to_string()},
        },
        "references": references,
    }));
    out
}

/// [`saved_objects`] as the NDJSON Kibana imports: one object per line.
pub fn ndjson() -> String {
    let mut s = String::new();
    for o in saved_objects() {
        s.push_str(&canonical_json(&o).to_string());
        s.push('\n');
    }
    s
}

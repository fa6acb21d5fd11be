/*!
The one event type that flows through Weir.

Every source on the OT side produces an [`Event`]; the diode carries it as its canonical JSON
serialisation; every sink on the IT side consumes it. Field names follow the Elastic Common Schema
(ECS 9.x, see [`ECS_VERSION`]); where ECS has no field, custom namespaces are used:

* `winlog.*` – Windows event detail, as Winlogbeat uses it,
* `flow.*`   – flow-record detail (connection state and history, payload bytes),
* `ot.*`     – industrial protocol detail,
* `weir.*`   – Weir's own provenance: event class, agent, input, stream, sequence, diode session,
  parse errors and diode gap records.

The serialised form *is* the schema: what [`Event::to_json`] writes is what a SIEM receives
(sinks may wrap it, never rename it). Changing a field here means bumping [`SCHEMA_VERSION`].

The module [`ecs`] holds helpers shared by the ECS conformance checks; [`fields`] lists every
field with its Elasticsearch type (the index templates are built from it).
*/

pub mod ecs;
mod event;
pub mod fields;
pub mod json;

pub use event::*;

/// Version of Weir's event schema (the `weir.schema_version` field). Bump on any change to the
/// serialised shape of [`Event`].
pub const SCHEMA_VERSION: &str = "1.3.0";

/// The ECS release the field names and types follow (the `ecs.version` field).
pub const ECS_VERSION: &str = "9.4.0";

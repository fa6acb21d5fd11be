/*!
Pure parsers: bytes in, [`weir_schemas::Event`] out.

Nothing here opens a socket, reads a file, looks at a clock or keeps global state: everything a
parser needs to know about the outside world (when the bytes arrived, from whom, which time zone
the sender lives in) comes in through a context struct. That keeps every parser deterministic,
testable against golden files, and fuzzable.

Each format offers two entry points:

* `parse(bytes, ctx) -> Result<Event, ParseError>` for callers that want the error, and
* `normalise(bytes, ctx) -> Event`, which never fails: input that does not parse becomes a raw
  event carrying `weir.parse_error`, `error.*`, the tag `weir_parse_failure` and the original
  bytes, so that nothing is ever dropped silently. Callers count those events.
*/
#![deny(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]

pub mod ot;
pub mod packet;
pub mod sensor;
pub mod syslog;
pub mod windows;
pub mod winxml;
pub mod wsman;

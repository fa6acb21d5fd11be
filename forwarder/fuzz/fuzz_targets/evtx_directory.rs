//! Any bytes as an `.evtx` file in a watched directory, read through the `evtx_directory`
//! source's own code path (`sources::evtx::scan_once`): the third-party parser may panic on a
//! crafted file, but the source catches it per file; nothing may escape, and what is queued is
//! event JSON.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weir::config::EvtxSource;
use weir::sources::evtx::{scan_once, EvtxContext};

fuzz_target!(|data: &[u8]| {
    // Panics inside the parser are caught by the source; keep them quiet (and not fatal to the
    // fuzzer, whose hook would abort on any panic, caught or not). A panic escaping the source
    // still ends this closure with an unwind, which libfuzzer reports.
    std::panic::set_hook(Box::new(|_| {}));
    let Ok(dir) = tempfile::tempdir() else { return };
    let logs = dir.path().join("evtx");
    if std::fs::create_dir_all(&logs).is_err() || std::fs::write(logs.join("a.evtx"), data).is_err() {
        return;
    }
    let (queue, mut out) = tokio::sync::mpsc::channel(1 << 16);
    let ctx = EvtxContext {
        cfg: EvtxSource {
            name: "fuzz".into(),
            directory: logs,
            state_dir: dir.path().join("state"),
            poll_interval: Duration::from_millis(10),
            keep_original: true,
        },
        agent: Arc::from("fuzz-agent"),
        stream: weir_diode_proto::StreamId(0),
        queue,
        stats: Arc::new(weir::telemetry::TxStats::default()),
    };
    let queued = scan_once(ctx).unwrap_or(0);
    let mut n = 0u64;
    while let Ok(r) = out.try_recv() {
        n += 1;
        assert!(r.payload.first() == Some(&b'{') || !r.payload.is_empty());
    }
    assert_eq!(n, queued);
});

//! `weir-siem-model TOKEN`: the in-process Splunk HEC model as a process, for load tests. It
//! counts events without keeping them, prints its URL, answers `GET /_model/count`, and runs
//! until killed.

use std::io::Write;

use weir_integrations::testing::HecServer;

fn main() -> std::io::Result<()> {
    let token = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "model-token".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let hec = HecServer::start(&token).await?;
        if let Ok(mut s) = hec.state.lock() {
            s.count_only = true;
        }
        let mut out = std::io::stdout();
        writeln!(out, "{}", hec.url())?;
        out.flush()?;
        std::future::pending::<()>().await;
        Ok(())
    })
}

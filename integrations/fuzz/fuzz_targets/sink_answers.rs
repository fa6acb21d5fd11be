//! Whatever a SIEM answers (status, body, Retry-After): classification never panics, and a
//! per-item verdict never names more events than were sent; buffer records with any bytes
//! split safely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_integrations::driver::Verdict;
use weir_integrations::elasticsearch::{self, EsResponse};
use weir_integrations::envelope::{split_view, Envelope, EnvelopeRef};
use weir_integrations::hec::{self, HecResponse};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else { return };
    let status = 100 + u16::from(head) * 2;
    let events = usize::from(head % 16) + 1;
    let body = String::from_utf8_lossy(rest).into_owned();
    let hec = hec::classify(events, &HecResponse::Http { status, body: body.clone(), retry_after: None });
    if let Verdict::Items(items) = hec {
        assert!(items.len() <= events.max(1));
    }
    let _ = elasticsearch::classify(events, &EsResponse::Http { status, body, retry_after: Some(1) });
    let _ = Envelope::split(rest);
    // A binary envelope that decodes encodes back to the same bytes.
    if let Some(env) = EnvelopeRef::decode(rest) {
        let mut again = Vec::new();
        env.encode(&mut again);
        assert_eq!(again, rest);
    }
    if let Some((view, json)) = split_view(rest) {
        assert!(json.len() < rest.len());
        let _ = view.get();
    }
});

//! Any bytes as a WEC request body: SLDC decompression stays within its limit, text decoding
//! and the envelope reader never panic, and every reply built from what was read is
//! well-formed XML that reads back with the right `RelatesTo`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_parsers::wsman::text::{self, Charset};
use weir_parsers::wsman::{cert, envelope, reply, sldc};

fn well_formed(xml: &str) {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut depth = 0i64;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("reply not well-formed: {e}\n{xml}"),
        }
    }
    assert_eq!(depth, 0, "{xml}");
}

fuzz_target!(|data: &[u8]| {
    const LIMIT: usize = 1 << 16;
    if let Ok(out) = sldc::decompress(data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
    let _ = cert::client_cert(data);
    for declared in [
        None,
        Some(Charset::Utf8),
        Some(Charset::Utf16Le),
        Some(Charset::Utf16Be),
    ] {
        let Ok((xml, cs)) = text::decode(data, declared) else {
            continue;
        };
        // Re-encoding what was decoded gives the same text back (a text that itself starts
        // with U+FEFF would lose it as a byte-order mark, by design).
        assert!(
            xml.starts_with('\u{feff}')
                || text::decode(&text::encode(&xml, cs), None)
                    .ok()
                    .map(|(t, _)| t)
                    == Some(xml.clone())
        );
        if let Ok(env) = envelope::parse(&xml) {
            let ack = reply::ack(&env, "uuid:A");
            well_formed(&ack);
            let back = envelope::parse(&ack).expect("our Ack reads back");
            assert_eq!(back.message_id, "uuid:A");
            let offer = reply::Offer {
                version: "V",
                name: &env.action,
                identifier: "I",
                address: env.to.as_deref().unwrap_or("https://x/"),
                query:
                    "<QueryList><Query Id=\"0\"><Select Path=\"S\">*</Select></Query></QueryList>",
                heartbeat_seconds: 1,
                max_time_seconds: 1,
                max_envelope_bytes: 512_000,
                max_items: None,
                content_format: "RenderedText",
                read_existing_events: false,
                compression: true,
                utf8: false,
                issuer_thumbprint: "T",
                bookmark: env.bookmark.as_deref(),
                message_id: &env.message_id,
            };
            well_formed(&reply::enumerate_response(&env, "uuid:B", &[offer]));
            well_formed(&reply::fault(
                Some(&env),
                "uuid:C",
                reply::Fault::EncodingLimit,
                &env.message_id,
            ));
        }
    }
});

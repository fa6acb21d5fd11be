//! Weir's JSON writer (`weir_schemas::json`) against serde_json on arbitrary text: one string,
//! and the text cut at NUL bytes into a map of keys and values and a list; the same bytes.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fn same<T: serde::Serialize>(value: &T) {
    let mut ours = Vec::new();
    weir_schemas::json::to_writer(&mut ours, value).expect("strings always serialise");
    assert_eq!(
        ours,
        serde_json::to_vec(value).expect("json"),
        "differs from serde_json"
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    same(&text);
    let parts: Vec<&str> = text.split('\0').collect();
    same(&parts);
    let map: BTreeMap<&str, &str> = parts
        .chunks(2)
        .filter_map(|p| Some((p[0], *p.get(1)?)))
        .collect();
    same(&map);
});

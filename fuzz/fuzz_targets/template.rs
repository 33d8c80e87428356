//! The template parser (JSON5 → strict JSON → tokens) and the render, on any bytes.
//!
//! Checks, beyond "no panic": every place in the strict JSON maps back into the template, in
//! order (so line:column in errors stays true), and strict JSON comes through unchanged; a
//! template that parses renders, with every query
//! answered, to strict JSON that holds no token and renders again to the same bytes.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mcw::dns::{Answer, Records, SrvTarget};
use mcw::template::{Template, json5};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(strict) = json5::to_strict(text) {
        // Every place in the strict text maps back into the template, in order.
        let mut last = 0;
        for at in 0..strict.text.len() {
            let source = strict.source_offset(at);
            assert!(source >= last && source <= text.len(), "{at} -> {source}");
            last = source;
        }
        // Strict JSON comes out unchanged.
        if serde_json::from_str::<serde_json::Value>(text).is_ok() {
            assert_eq!(strict.text, text);
        }
    }
    let Ok(template) = Template::parse(Path::new("fuzz.json"), text) else {
        return;
    };
    let answers: HashMap<_, _> = template
        .queries()
        .into_iter()
        .map(|q| {
            let records = match q.srv {
                true => Records::Srv(vec![SrvTarget {
                    weight: 1,
                    priority: 0,
                    port: 11211,
                    target: "mc-0.mc.test".into(),
                    addrs: vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
                }]),
                false => Records::Addrs(vec!["10.0.0.2".parse().unwrap()]),
            };
            (q, Answer::new(records, 30))
        })
        .collect();
    let rendered = mcw::template::render::render(&template, &answers).expect("all answered");
    let out = std::str::from_utf8(&rendered.bytes).expect("UTF-8 out");
    let _: serde_json::Value = serde_json::from_str(out).expect("strict JSON out");
    let again = Template::parse(Path::new("rendered.json"), out).expect("a render parses");
    assert!(again.queries().is_empty(), "a render holds a token:\n{out}");
    let twice = mcw::template::render::render(&again, &HashMap::new()).expect("no tokens");
    assert_eq!(twice.bytes, rendered.bytes);
});

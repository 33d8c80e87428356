//! The token grammar (`dns://`, `dns+PORT://`, `dnssrv://`, `?family=…&protocol=…`).
//!
//! Checks: a parsed token's name passes the name rules, its port is not 0, its suffix is only
//! `:word` parts; a string without `://` is a static entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcw::template::token;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match token::parse(text) {
        Ok(None) => assert!(!text.contains("://")),
        Ok(Some(t)) => {
            assert!(mcw::dns::validate_name(&t.query.name).is_ok());
            assert_ne!(t.port, Some(0));
            assert_eq!(t.port.is_none(), t.query.srv);
            assert!(t.suffix.is_empty() || t.suffix.starts_with(':'));
            assert!(t.suffix[1.min(t.suffix.len())..].split(':').all(|w| {
                w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            }));
            // Nothing a token turns into can break out of a JSON string or form a macro.
            assert!(!t.query.name.contains(['"', '\\', '@', '%', '{', '}']));
        }
        Err(e) => {
            // Every refusal says something.
            assert!(!e.to_string().is_empty());
        }
    }
});

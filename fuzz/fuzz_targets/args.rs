//! mcrouter argument vetting: the words after `--` in `mcw run -- mcrouter …`.
//!
//! Input: words separated by NUL. Checks: vetting never panics; an accepted command is kept
//! word for word; mcrouter's position, when found, names a word called mcrouter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcw::supervise::args;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let words: Vec<String> = text.split('\0').map(str::to_string).collect();
    match args::vet(&words, "mcrouter") {
        Ok(launch) => {
            assert_eq!(launch.command, words);
            if let Some(at) = launch.mcrouter_at {
                let name = std::path::Path::new(&words[at]).file_name();
                assert!(name.is_some_and(|n| n == "mcrouter"));
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

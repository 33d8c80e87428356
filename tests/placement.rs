//! mcw's predicted share of remapped keys against the share measured through the mcrouter
//! stand-in and real memcached, for every event of the placement benchmark: within 2 points.

mod common;

use common::placement::{Fleet, ROWS, scenario};

#[test]
fn predicted_remap_shares_agree_with_keys_moved_between_real_memcached() {
    let fleet = Fleet::start();
    let mut report = String::new();
    let mut worst: f64 = 0.0;
    for row in &ROWS {
        let (moved, predicted) = scenario(&fleet, row, 4000);
        let predicted =
            predicted.unwrap_or_else(|| panic!("{}: mcw logged no remapped share", row.3));
        report += &format!(
            "{} ({}): measured {:.1} %, predicted {:.1} %\n",
            row.3,
            row.4,
            moved * 100.0,
            predicted * 100.0
        );
        worst = worst.max((moved - predicted).abs());
    }
    assert!(
        worst <= 0.02,
        "a prediction is more than 2 points off:\n{report}"
    );
    eprint!("{report}");
}

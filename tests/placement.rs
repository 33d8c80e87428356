//! mcw's predicted share of remapped keys against the share measured through mcrouter (the
//! stand-in, and the real one when there is one) and real memcached, for every event of the
//! placement benchmark: within 2 points.

mod common;

use common::placement::{Fleet, ROWS, scenario};
use common::{Mcrouter, with_each_mcrouter};

#[test]
fn predicted_remap_shares_agree_with_keys_moved_between_real_memcached() {
    let fleet = Fleet::start();
    with_each_mcrouter(|mcrouter| predictions_hold(&fleet, mcrouter));
}

fn predictions_hold(fleet: &Fleet, mcrouter: &Mcrouter) {
    let mut report = String::new();
    let mut worst: f64 = 0.0;
    for row in &ROWS {
        let (moved, predicted) = scenario(fleet, mcrouter, row, 4000);
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

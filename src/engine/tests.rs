//! The engine's behaviour as a table of transitions: events in, actions out, on a clock the
//! test moves by hand.

use std::collections::HashMap;

use super::*;
use crate::dns;
use crate::dns::{Answer, Failure, Records};

const ONE_TOKEN: &str =
    r#"{"pools": {"a": {"servers": ["dns://a.test"]}}, "route": "PoolRoute|a"}"#;
const MIN: Duration = Duration::from_secs(5);
const CONFIRM: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
const SLOW_POLL: Duration = Duration::from_secs(1);

fn settings() -> Settings {
    Settings {
        template: "t.json".into(),
        refresh: Refresh {
            min_refresh: MIN,
            max_refresh: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(60),
            allow_empty: false,
            hold_removed: Duration::ZERO,
        },
        supervision: None,
        warm_up: None,
    }
}

/// `watch` settings changed by `change`.
fn watch_with(change: impl FnOnce(&mut Refresh)) -> Settings {
    let mut s = settings();
    change(&mut s.refresh);
    s
}

/// `run` mode without an admin port: supervise, but nothing to confirm with.
fn supervised(change: impl FnOnce(&mut Supervision)) -> Settings {
    let mut supervision = Supervision {
        route_prefix: "/././".into(),
        validate_timeout: None,
        confirm: None,
    };
    change(&mut supervision);
    Settings {
        supervision: Some(supervision),
        ..settings()
    }
}

/// `run` mode: supervise and confirm.
fn run_settings() -> Settings {
    supervised(|s| {
        s.confirm = Some(ConfirmSettings {
            timeout: CONFIRM,
            poll: POLL,
            slow_poll: SLOW_POLL,
        })
    })
}

fn query() -> Query {
    Query {
        name: "a.test".into(),
        srv: false,
        family: crate::dns::Family::Ipv4,
    }
}

/// One lookup result for the template's only token.
fn answer(ip: &str) -> Event {
    let records = Records::Addrs(vec![ip.parse().unwrap()]);
    Event::Looked(HashMap::from([(query(), Ok(Answer::new(records, 30)))]))
}

fn failure(f: Failure) -> Event {
    Event::Looked(HashMap::from([(query(), Err(f))]))
}

/// mcrouter's answer: it runs `bytes`, and has failed `failures` reloads.
fn runs(bytes: &[u8], failures: u64) -> Event {
    Event::Running(Observed {
        running: Ok(md5(bytes)),
        failures: Some(failures),
        from_disk: false,
    })
}

/// mcrouter's answer when it gives no digest.
fn cannot(reason: &str) -> Event {
    Event::Running(Observed {
        running: Err(reason.into()),
        failures: None,
        from_disk: false,
    })
}

struct Run {
    engine: Engine,
    start: Instant,
    now: Instant,
}

impl Run {
    fn new(s: Settings) -> Run {
        let start = Instant::now();
        let engine = Engine::new(s, ONE_TOKEN.into(), start, 7).unwrap();
        Run {
            engine,
            start,
            now: start,
        }
    }

    fn at(&mut self, after: Duration) -> &mut Run {
        self.now = self.start + after;
        self
    }

    fn feed(&mut self, event: Event) -> Vec<Action> {
        self.engine.handle(event, self.now)
    }

    /// Feed and keep only the non-report actions.
    fn act(&mut self, event: Event) -> Vec<Action> {
        let mut actions = self.feed(event);
        actions.retain(|a| !matches!(a, Action::Report(_)));
        actions
    }

    /// `run` mode: the first write of `ip`, mcrouter started and running it.
    fn confirmed_start(&mut self, ip: &str) -> Vec<u8> {
        let bytes = self.first_write(ip);
        self.act(Event::ChildStarted);
        self.act(Event::Tick);
        self.act(runs(&bytes, 0));
        bytes
    }

    /// SIGHUP, then `event` (the answers to the lookups it starts). The disk check SIGHUP
    /// asks for, a write of the config in force, is answered "the file holds it" and left out.
    fn sighup_then(&mut self, event: Event) -> Vec<Action> {
        self.act(Event::Refresh);
        let mut actions = self.feed(event);
        let current = self.engine.current.as_ref().map(|c| c.generation);
        let repair = actions.iter().position(
            |a| matches!(a, Action::Write { generation, .. } if Some(*generation) == current),
        );
        if let Some(at) = repair {
            let Action::Write { generation, .. } = actions.remove(at) else {
                unreachable!()
            };
            let result = Ok(Wrote::Unchanged);
            actions.extend(self.feed(Event::Wrote { generation, result }));
        }
        actions
    }

    /// The token's refresh is due (its TTL is 30 s): tick then, and feed DNS's answer `ip`.
    fn refreshed(&mut self, ip: &str) -> Vec<Action> {
        self.now += Duration::from_secs(34);
        let tick = self.act(Event::Tick);
        assert!(tick.contains(&Action::Lookup(vec![query()])), "{tick:?}");
        self.feed(answer(ip))
    }

    /// DNS answers `ip` at the next refresh, and the write of `generation` succeeds; returns
    /// its bytes.
    fn next_write(&mut self, ip: &str, generation: u64) -> Vec<u8> {
        let bytes = written(&self.refreshed(ip), generation);
        self.act(Event::Wrote {
            generation,
            result: Ok(Wrote::Replaced),
        });
        bytes
    }

    /// Start, resolve `ip`, write it; returns its bytes.
    fn first_write(&mut self, ip: &str) -> Vec<u8> {
        assert_eq!(self.act(Event::Tick), [Action::Lookup(vec![query()])]);
        let bytes = written(&self.act(answer(ip)), 1);
        self.feed(Event::Wrote {
            generation: 1,
            result: Ok(Wrote::Replaced),
        });
        bytes
    }
}

/// The bytes of the `Write` of `generation` among `actions`.
fn written(actions: &[Action], generation: u64) -> Vec<u8> {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Write {
                generation: g,
                bytes,
                ..
            } if *g == generation => Some(bytes.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write of generation {generation} in {actions:?}"))
}

fn reports(actions: &[Action]) -> Vec<&Report> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn md5(bytes: &[u8]) -> String {
    md5_hex(bytes)
}

#[test]
fn the_first_config_is_written_once_every_token_has_answered() {
    let mut r = Run::new(settings());
    assert_eq!(r.act(Event::Tick), [Action::Lookup(vec![query()])]);
    let actions = r.feed(answer("10.0.0.1"));
    let bytes = written(&actions, 1);
    assert!(String::from_utf8_lossy(&bytes).contains("\"10.0.0.1:11211\""));
    let done = r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Replaced),
    });
    assert!(matches!(
        reports(&done)[..],
        [Report::Wrote {
            generation: 1,
            servers: 1,
            ..
        }]
    ));
    // In `watch` mode nothing is started.
    assert!(!done.iter().any(|a| matches!(a, Action::StartChild { .. })));
}

#[test]
fn an_answer_with_the_same_records_costs_no_write_and_a_failure_keeps_the_last_good_one() {
    let mut r = Run::new(settings());
    r.first_write("10.0.0.1");
    r.at(MIN * 7);
    assert_eq!(r.act(Event::Tick), [Action::Lookup(vec![query()])]);
    assert_eq!(r.act(answer("10.0.0.1")), []);
    r.at(MIN * 14);
    r.act(Event::Tick);
    let failed = r.feed(failure(Failure::Transient(
        dns::Trouble::ServFail,
        "SERVFAIL".into(),
    )));
    assert!(matches!(
        reports(&failed)[..],
        [Report::LookupFailed { kept: true, .. }]
    ));
    assert_eq!(failed.len(), 1, "nothing is written: {failed:?}");
    // The retry comes at --min-refresh, and the same failure is not reported twice.
    assert_eq!(r.engine.next_wake(), r.now + MIN);
    r.at(MIN * 15);
    r.act(Event::Tick);
    assert_eq!(
        r.feed(failure(Failure::Transient(
            dns::Trouble::ServFail,
            "SERVFAIL".into()
        ))),
        []
    );
    let recovered = r.feed(answer("10.0.0.2"));
    assert!(matches!(
        reports(&recovered)[0],
        Report::DnsRecovered { .. }
    ));
    written(&recovered, 2);
}

#[test]
fn allow_empty_turns_nxdomain_into_an_empty_pool() {
    let mut r = Run::new(watch_with(|r| r.allow_empty = true));
    r.first_write("10.0.0.1");
    r.at(MIN * 7);
    r.act(Event::Tick);
    let nx = failure(Failure::NxDomain {
        tried: vec!["a.test".into()],
    });
    let bytes = written(&r.act(nx), 2);
    assert!(String::from_utf8_lossy(&bytes).contains("\"servers\": []"));
}

#[test]
fn a_broken_template_edit_keeps_the_last_good_one_and_a_good_one_re_resolves() {
    let mut r = Run::new(settings());
    let bytes = r.first_write("10.0.0.1");
    let broken = r.feed(Event::Template(Ok("{\n  \"pools\": {,\n}".into())));
    match &reports(&broken)[..] {
        [Report::TemplateRejected { reason }] => assert!(reason.contains("t.json:2:"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The last good config goes through write-if-changed again, as after every read.
    assert_eq!(written(&broken, 1), bytes);
    assert_eq!(broken.len(), 2);
    let good = ONE_TOKEN.replace("dns://a.test", "dns+1://a.test");
    let actions = r.feed(Event::Template(Ok(good.clone())));
    assert!(actions.contains(&Action::Lookup(vec![query()])));
    // The same text again is not news.
    assert_eq!(r.feed(Event::Template(Ok(good))), []);
}

/// Regression: SIGHUP only re-resolved; the README and `systemctl reload` promise that it
/// re-reads the template too.
#[test]
fn sighup_re_reads_the_template_and_looks_up_every_token_not_already_in_flight() {
    let mut r = Run::new(settings());
    r.act(Event::Tick);
    assert_eq!(
        r.act(Event::Refresh),
        [Action::ReadTemplate],
        "the first lookup is still in flight"
    );
    r.act(answer("10.0.0.1"));
    assert_eq!(
        r.act(Event::Refresh),
        [Action::ReadTemplate, Action::Lookup(vec![query()])]
    );
}

/// Regression: the engine compared a render with what it remembered writing, so a deleted
/// output (or directory) was never written again while the render stayed the same.
#[test]
fn sighup_and_the_periodic_template_read_write_the_config_again_through_write_if_changed() {
    let mut r = Run::new(settings());
    let bytes = r.first_write("10.0.0.1");
    // SIGHUP, the same answer: the config in force goes through write-if-changed again.
    r.act(Event::Refresh);
    let again = r.act(answer("10.0.0.1"));
    assert_eq!(written(&again, 1), bytes);
    // The file was gone: written again, and said so.
    let repaired = r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Replaced),
    });
    assert!(
        matches!(reports(&repaired)[..], [Report::Repaired { md5: m }] if *m == md5(&bytes)),
        "{repaired:?}"
    );
    // A refresh of the token alone does not read the file.
    assert_eq!(writes(&r.refreshed("10.0.0.1")), 0);
    // The periodic re-read of an unchanged template checks the disk; a file that holds the
    // config costs a read and says nothing.
    r.at(Duration::from_secs(61));
    let tick = r.act(Event::Tick);
    assert!(tick.contains(&Action::ReadTemplate), "{tick:?}");
    let read = r.feed(Event::Template(Ok(ONE_TOKEN.into())));
    assert_eq!(written(&read, 1), bytes);
    let quiet = r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Unchanged),
    });
    assert_eq!(quiet, []);
}

#[test]
fn run_mode_starts_mcrouter_after_the_first_write_and_confirms_it() {
    let mut r = Run::new(run_settings());
    r.act(Event::Tick);
    let bytes = written(&r.act(answer("10.0.0.1")), 1);
    let done = r.act(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Replaced),
    });
    assert_eq!(
        done,
        [Action::StartChild {
            bytes: bytes.clone()
        }]
    );
    assert_eq!(r.act(Event::ChildStarted), []);
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    r.at(Duration::from_millis(1200));
    let confirmed = r.feed(runs(&bytes, 0));
    assert!(matches!(reports(&confirmed)[..],
        [Report::Confirmed { after, .. }] if *after == Duration::from_millis(1200)));
    assert!(r.engine.in_sync());
}

/// Regression: each new write used to abort the pending confirmation, so a config A could run
/// in mcrouter unrecorded; when the next write B was rejected, an older Z was written back.
#[test]
fn a_rejection_restores_the_bytes_mcrouter_reports_running_not_the_last_confirmed() {
    let mut r = Run::new(run_settings());
    r.confirmed_start("10.0.0.1");
    // A, then B before mcrouter has loaded A.
    let a = r.next_write("10.0.0.2", 2);
    r.now += Duration::from_millis(200);
    let b = r.next_write("10.0.0.3", 3);
    // mcrouter loads A, then tries B and fails: its failure count grows, its md5 stays A's.
    r.act(Event::Tick);
    let earlier = r.feed(runs(&a, 0));
    assert!(matches!(reports(&earlier)[..], [Report::RunsEarlier { md5 }] if *md5 == md5_hex(&a)));
    r.now += POLL;
    r.act(Event::Tick);
    let verdict = r.feed(runs(&a, 1));
    match &reports(&verdict)[..] {
        [
            Report::Rejected {
                md5: rej,
                running,
                failures: 1,
                restoring: true,
                ..
            },
        ] => {
            assert_eq!(rej, &md5(&b));
            assert_eq!(running, &md5(&a));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(written(&verdict, 4), a, "A runs, so A is written back");
    let restored = r.feed(Event::Wrote {
        generation: 4,
        result: Ok(Wrote::Replaced),
    });
    // The rollback is a change of the pool like any write, and is reported as one.
    match &reports(&restored)[..] {
        [
            Report::PoolChanged { added, removed, .. },
            Report::Restored { .. },
        ] => {
            assert_eq!(added, &["10.0.0.2:11211"]);
            assert_eq!(removed, &["10.0.0.3:11211"]);
        }
        other => panic!("{other:?}"),
    }
    // mcrouter runs A, which the file holds again.
    r.act(Event::Tick);
    let settled = r.feed(runs(&a, 1));
    assert!(
        matches!(reports(&settled)[..], [Report::Confirmed { .. }]),
        "{settled:?}"
    );
    // The rejected render is not written again at the next refresh, nor when it comes back
    // after another answer.
    assert_eq!(r.refreshed("10.0.0.3"), []);
    r.next_write("10.0.0.4", 5);
    let again = r.refreshed("10.0.0.3");
    assert!(
        matches!(reports(&again)[..], [Report::SkippedRejected { .. }]),
        "{again:?}"
    );
    // SIGHUP lifts the block: the operator asks to try again.
    let retried = r.feed(Event::Refresh);
    assert!(
        retried
            .iter()
            .any(|a| matches!(a, Action::Write { bytes, .. } if *bytes == b)),
        "{retried:?}"
    );
}

/// Regression: a reload slower than `--confirm-timeout` was called a rejection, the old bytes
/// were written back and the good config never ran.
#[test]
fn a_reload_slower_than_the_confirm_timeout_is_not_a_rejection_and_is_confirmed_late() {
    let mut r = Run::new(run_settings());
    let z = r.confirmed_start("10.0.0.1");
    let b = r.next_write("10.0.0.2", 2);
    let written_at = r.now;
    r.act(Event::Tick);
    assert_eq!(r.feed(runs(&z, 0)), [], "no verdict before the deadline");
    r.now = written_at + CONFIRM;
    let late = r.feed(Event::Tick);
    match &reports(&late)[..] {
        [Report::NotReloadedYet { md5: m, running }] => {
            assert_eq!(m, &md5(&b));
            assert_eq!(running, &md5(&z));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !late.iter().any(|a| matches!(a, Action::Write { .. })),
        "never rolled back: {late:?}"
    );
    // mcw keeps asking, at the slow pace.
    assert!(!late.contains(&Action::AskMcrouter));
    r.now += SLOW_POLL;
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    assert_eq!(r.feed(runs(&z, 0)), [], "still no failure: no verdict");
    r.now += SLOW_POLL;
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    let ok = r.feed(runs(&b, 0));
    assert!(
        matches!(reports(&ok)[..], [Report::Confirmed { md5: m, .. }] if *m == md5(&b)),
        "{ok:?}"
    );
    assert!(r.engine.in_sync());
}

/// Regression: after "cannot tell" at the first confirmation (mcrouter opened its admin port
/// late), nothing asked again, and readiness never came.
#[test]
fn after_cannot_tell_mcw_keeps_asking_until_mcrouter_answers() {
    let mut r = Run::new(run_settings());
    let bytes = r.first_write("10.0.0.1");
    r.act(Event::ChildStarted);
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    r.feed(cannot("connection refused"));
    r.at(CONFIRM);
    let verdict = r.feed(Event::Tick);
    assert!(
        matches!(reports(&verdict)[..], [Report::CannotTell { reason, .. }] if reason.contains("refused")),
        "{verdict:?}"
    );
    assert!(!r.engine.confirmed());
    r.at(CONFIRM + SLOW_POLL);
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    let ok = r.feed(runs(&bytes, 0));
    assert!(matches!(reports(&ok)[..], [Report::Confirmed { .. }]));
    assert!(r.engine.confirmed() && r.engine.in_sync());
    // Settled: no more questions.
    r.at(CONFIRM * 3);
    assert_eq!(r.act(Event::Tick), []);
}

/// A confirmed A, then B rejected (mcrouter's failures grew): the write back of A, generation
/// 3, is under way.
fn restoring() -> (Run, Vec<u8>) {
    let mut r = Run::new(run_settings());
    let a = r.confirmed_start("10.0.0.1");
    r.next_write("10.0.0.2", 2);
    r.act(Event::Tick);
    let verdict = r.feed(runs(&a, 1));
    assert_eq!(written(&verdict, 3), a);
    (r, a)
}

#[test]
fn a_restore_whose_write_fails_is_retried_as_a_restore() {
    let (mut r, a) = restoring();
    r.feed(Event::Wrote {
        generation: 3,
        result: Err("output /x: cannot write: No space left on device".into()),
    });
    r.now += MIN;
    let retry = r.act(Event::Tick);
    assert_eq!(
        written(&retry, 4),
        a,
        "the retry writes A back again: {retry:?}"
    );
    let done = r.feed(Event::Wrote {
        generation: 4,
        result: Ok(Wrote::Replaced),
    });
    assert!(
        matches!(reports(&done)[..], [.., Report::Restored { .. }]),
        "{done:?}"
    );
}

/// Regression: a restore reported (and counted) a write when the file already held the
/// bytes.
#[test]
fn a_restore_that_finds_the_bytes_on_disk_reports_no_write() {
    let (mut r, _) = restoring();
    let done = r.feed(Event::Wrote {
        generation: 3,
        result: Ok(Wrote::Unchanged),
    });
    assert_eq!(reports(&done), Vec::<&Report>::new());
}

#[test]
fn a_confirmation_that_arrives_after_a_newer_write_confirms_the_newer_one_later() {
    let mut r = Run::new(run_settings());
    let z = r.confirmed_start("10.0.0.1");
    let b = r.next_write("10.0.0.2", 2);
    let written_at = r.now;
    r.act(Event::Tick);
    // Still the old one: no verdict before the deadline.
    assert_eq!(r.feed(runs(&z, 0)), []);
    r.now += POLL;
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    let ok = r.feed(runs(&b, 0));
    assert!(matches!(reports(&ok)[..], [Report::Confirmed { .. }]));
    r.now = written_at + CONFIRM * 2;
    assert_eq!(r.feed(Event::Tick), [], "no verdict left to give");
}

#[test]
fn an_answer_that_is_no_digest_is_cannot_tell_and_never_a_rollback() {
    let mut r = Run::new(run_settings());
    r.confirmed_start("10.0.0.1");
    r.next_write("10.0.0.2", 2);
    let written_at = r.now;
    r.act(Event::Tick);
    r.feed(cannot("mcrouter answered \"ERROR\""));
    r.now = written_at + CONFIRM;
    let verdict = r.feed(Event::Tick);
    assert!(
        matches!(reports(&verdict)[..], [Report::CannotTell { reason, .. }] if reason.contains("ERROR"))
    );
    assert_eq!(verdict.len(), 1, "nothing written back: {verdict:?}");
}

#[test]
fn a_candidate_the_validator_rejects_is_discarded_and_not_validated_again() {
    let mut s = supervised(|s| s.validate_timeout = Some(Duration::from_secs(10)));
    s.refresh.startup_timeout = Duration::from_secs(3600);
    let mut r = Run::new(s);
    r.act(Event::Tick);
    let actions = r.act(answer("10.0.0.1"));
    assert!(matches!(
        &actions[..],
        [Action::Validate { generation: 1, .. }]
    ));
    let rejected = r.feed(Event::Validated {
        generation: 1,
        result: Err("exit status 3".into()),
    });
    assert_eq!(
        rejected[0],
        Action::EndValidation {
            generation: 1,
            install: false
        }
    );
    assert!(matches!(
        reports(&rejected)[..],
        [Report::ValidatorRejected { .. }]
    ));
    assert_eq!(
        r.refreshed("10.0.0.1")
            .into_iter()
            .filter(|a| !matches!(a, Action::Report(_)))
            .collect::<Vec<_>>(),
        [],
        "the same bytes are not validated again"
    );
    let next = r.refreshed("10.0.0.2");
    assert!(
        next.iter()
            .any(|a| matches!(a, Action::Validate { generation: 2, .. })),
        "{next:?}"
    );
    let ok = r.act(Event::Validated {
        generation: 2,
        result: Ok(()),
    });
    assert_eq!(
        ok,
        [Action::EndValidation {
            generation: 2,
            install: true
        }]
    );
    let done = r.feed(Event::Wrote {
        generation: 2,
        result: Ok(Wrote::Replaced),
    });
    assert!(matches!(
        reports(&done)[..],
        [Report::Wrote { generation: 2, .. }]
    ));
}

/// Regression: a validator that never exited stalled every later update.
#[test]
fn a_hung_validator_is_killed_at_its_deadline_and_later_renders_are_validated() {
    let limit = Duration::from_secs(10);
    let mut r = Run::new(supervised(|s| s.validate_timeout = Some(limit)));
    r.act(Event::Tick);
    r.act(answer("10.0.0.1"));
    assert_eq!(r.engine.next_wake(), r.start + limit);
    r.at(limit);
    let killed = r.feed(Event::Tick);
    assert!(killed.contains(&Action::EndValidation {
        generation: 1,
        install: false
    }));
    assert!(
        matches!(reports(&killed)[..], [Report::ValidatorRejected { reason, .. }] if reason.contains("timed out"))
    );
    // Its late exit changes nothing.
    assert_eq!(
        r.feed(Event::Validated {
            generation: 1,
            result: Ok(())
        }),
        []
    );
    let next = r.refreshed("10.0.0.2");
    assert!(
        next.iter()
            .any(|a| matches!(a, Action::Validate { generation: 2, .. })),
        "{next:?}"
    );
}

/// Regression: the startup-timeout message said "0 tokens never resolved" when the cause was
/// a write that kept failing.
#[test]
fn startup_gives_up_naming_a_failing_write_and_retries_it_meanwhile() {
    let mut r = Run::new(settings());
    r.act(Event::Tick);
    r.act(answer("10.0.0.1"));
    let failed = r.feed(Event::Wrote {
        generation: 1,
        result: Err("output /run/x.json: cannot write: No space left on device".into()),
    });
    assert!(matches!(reports(&failed)[..], [Report::WriteFailed { .. }]));
    assert_eq!(r.engine.next_wake(), r.now + MIN);
    r.at(MIN);
    written(&r.act(Event::Tick), 2);
    r.feed(Event::Wrote {
        generation: 2,
        result: Err("output /run/x.json: cannot write: No space left on device".into()),
    });
    r.at(Duration::from_secs(60));
    match &r.act(Event::Tick)[..] {
        [Action::GiveUp(f)] => {
            assert!(f.missing.is_empty());
            let message = f.to_string();
            assert!(message.contains("No space left on device"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn startup_gives_up_naming_each_token_that_never_answered() {
    let mut r = Run::new(settings());
    r.act(Event::Tick);
    r.act(failure(Failure::Transient(
        dns::Trouble::Timeout,
        "timed out".into(),
    )));
    r.at(Duration::from_secs(60));
    match &r.act(Event::Tick)[..] {
        [Action::GiveUp(f)] => {
            assert_eq!(f.missing.len(), 1);
            assert_eq!(f.missing[0].pointer, "/pools/a/servers/0");
            assert_eq!(f.problem, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_template_without_tokens_is_written_at_the_first_tick() {
    let s = settings();
    let text = r#"{"pools": {"a": {"servers": ["10.0.0.1:11211"]}}, "route": "PoolRoute|a"}"#;
    let now = Instant::now();
    let mut engine = Engine::new(s, text.into(), now, 1).unwrap();
    let actions = engine.handle(Event::Tick, now);
    written(&actions, 1);
}

#[test]
fn a_template_without_the_routing_prefix_is_refused_at_start_and_rejected_as_an_edit() {
    let routes = r#"{"routes": [{"aliases": ["/a/b/"], "route": "PoolRoute|p"}], "pools": {"p": {"servers": ["dns://a.test"]}}}"#;
    let s = supervised(|s| s.route_prefix = "/x/y/".into());
    let err = Engine::new(s.clone(), routes.into(), Instant::now(), 1)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("invalid default route"), "{err}");
    let ok = routes.replace("/a/b/", "/x/y/");
    let mut engine = Engine::new(s, ok.clone(), Instant::now(), 1).unwrap();
    let edit = engine.handle(
        Event::Template(Ok(ok.replace("/x/y/", "/c/d/"))),
        Instant::now(),
    );
    assert!(matches!(
        reports(&edit)[..],
        [Report::TemplateRejected { .. }]
    ));
}

#[test]
fn refresh_interval_is_the_ttl_clamped_with_a_little_jitter() {
    let (min, max) = (Duration::from_secs(5), Duration::from_secs(60));
    let cases = [
        (0, 0.0, 5.0),
        (30, 0.0, 30.0),
        (30, 0.5, 31.5),
        (3600, 0.0, 60.0),
        (3600, 0.999, 65.994),
    ];
    for (ttl, jitter, want) in cases {
        let got = refresh_after(ttl, min, max, jitter).as_secs_f64();
        assert!(
            (got - want).abs() < 0.01,
            "ttl {ttl} jitter {jitter}: {got} != {want}"
        );
    }
    // A sub-second minimum is honoured (tests and fast failover).
    let fast = refresh_after(0, Duration::from_millis(200), max, 0.0);
    assert_eq!(fast, Duration::from_millis(200));
}

/// One lookup result with several addresses.
fn addrs(ips: &[&str]) -> Event {
    let records = Records::Addrs(ips.iter().map(|ip| ip.parse().unwrap()).collect());
    Event::Looked(HashMap::from([(query(), Ok(Answer::new(records, 30)))]))
}

fn writes(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Write { .. } | Action::Validate { .. }))
        .count()
}

const HOLD: Duration = Duration::from_secs(3);

/// `--hold-removed`: start with three servers written.
fn held_run() -> Run {
    let mut r = Run::new(watch_with(|r| r.hold_removed = HOLD));
    r.act(Event::Tick);
    let first = r.feed(addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
    assert_eq!(writes(&first), 1);
    r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Replaced),
    });
    r
}

#[test]
fn a_vanished_server_keeps_its_slot_until_the_hold_runs_out() {
    let mut r = held_run();
    let gone = r
        .at(Duration::from_secs(1))
        .sighup_then(addrs(&["10.0.0.1", "10.0.0.3"]));
    assert_eq!(writes(&gone), 0, "{gone:?}");
    assert!(reports(&gone).iter().any(|rep| matches!(rep,
        Report::Holding { server, hold, .. } if server == "10.0.0.2" && *hold == HOLD)));
    assert_eq!(r.engine.status(r.now).tokens[0].held, ["10.0.0.2"]);
    // The engine wakes when the hold runs out, and the pool shrinks then.
    assert_eq!(r.engine.next_wake(), r.start + Duration::from_secs(4));
    let released = r.at(Duration::from_secs(4)).feed(Event::Tick);
    assert!(reports(&released).iter().any(|rep| matches!(rep,
        Report::HoldEnded { server, back: false, .. } if server == "10.0.0.2")));
    assert_eq!(writes(&released), 1);
    assert!(r.engine.status(r.now).tokens[0].held.is_empty());
}

#[test]
fn a_held_server_that_returns_changes_nothing_and_additions_apply_at_once() {
    let mut r = held_run();
    r.at(Duration::from_secs(1))
        .sighup_then(addrs(&["10.0.0.1", "10.0.0.3"]));
    let back = r
        .at(Duration::from_secs(2))
        .sighup_then(addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
    assert_eq!(writes(&back), 0);
    assert!(reports(&back).iter().any(|rep| matches!(rep,
        Report::HoldEnded { server, back: true, .. } if server == "10.0.0.2")));
    assert_eq!(writes(&r.at(Duration::from_secs(10)).feed(Event::Tick)), 0);

    let added = r.sighup_then(addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]));
    assert_eq!(writes(&added), 1);
}

/// mcrouter could not load mcw's file at startup and serves a config it dumped in an earlier
/// run (`configs_from_disk=1`): even with the md5 of mcw's own bytes (an earlier run wrote the
/// same config) that is never a confirmation, and it is said once.
#[test]
fn a_config_mcrouter_serves_from_its_dump_is_never_confirmed() {
    let mut r = Run::new(run_settings());
    let bytes = r.first_write("10.0.0.1");
    r.act(Event::ChildStarted);
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    let dump = |failures| {
        Event::Running(Observed {
            running: Ok(md5(&bytes)),
            failures: Some(failures),
            from_disk: true,
        })
    };
    let said = r.feed(dump(1));
    assert!(
        matches!(reports(&said)[..], [Report::RunsDump { md5: m, .. }] if *m == md5(&bytes)),
        "{said:?}"
    );
    assert!(!r.engine.confirmed() && !r.engine.in_sync() && r.engine.runs_a_dump());
    r.now += POLL;
    assert_eq!(r.act(Event::Tick), [Action::AskMcrouter]);
    assert_eq!(r.feed(dump(1)), [], "said once");
    // mcrouter loads the file at last (after the next write, or SIGHUP): confirmed.
    r.now += POLL;
    r.act(Event::Tick);
    let ok = r.feed(runs(&bytes, 1));
    assert!(
        matches!(reports(&ok)[..], [Report::Confirmed { .. }]),
        "{ok:?}"
    );
    assert!(r.engine.confirmed() && !r.engine.runs_a_dump());
}

/// mcrouter's reason for a failed load (from its log) goes with the rejection it explains:
/// in the rejection when it came first, in a report of its own when it came after.
#[test]
fn mcrouters_reason_goes_with_its_rejection_whichever_comes_first() {
    let mut r = Run::new(run_settings());
    let a = r.confirmed_start("10.0.0.1");
    r.next_write("10.0.0.2", 2);
    r.act(Event::LoadFailed("TypeError: expected object".into()));
    r.act(Event::Tick);
    let verdict = r.feed(runs(&a, 1));
    assert!(
        matches!(&reports(&verdict)[..], [Report::Rejected { reason: Some(why), .. }] if why == "TypeError: expected object"),
        "{verdict:?}"
    );
    r.feed(Event::Wrote {
        generation: 3,
        result: Ok(Wrote::Replaced),
    });
    r.feed(runs(&a, 1));
    // The next rejection's reason arrives after the verdict.
    let c = r.next_write("10.0.0.3", 4);
    r.act(Event::Tick);
    let verdict = r.feed(runs(&a, 2));
    assert!(
        matches!(&reports(&verdict)[..], [Report::Rejected { reason: None, md5: m, .. }] if *m == md5(&c)),
        "{verdict:?}"
    );
    let later = r.feed(Event::LoadFailed("unknown pool".into()));
    assert!(
        matches!(&reports(&later)[..], [Report::RejectedBecause { md5: m, reason }] if *m == md5(&c) && reason == "unknown pool"),
        "{later:?}"
    );
    assert_eq!(
        r.engine.status(r.now).last_failure.as_deref(),
        Some("unknown pool")
    );
}

/// The actions of `actions` that are not reports.
fn acts(actions: &[Action]) -> Vec<&Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Report(_)))
        .collect()
}

/// Regression: mcrouter running Z, mcw writing A then B within one poll, and mcrouter failing
/// A: B was declared rejected, blocked, and Z written over it. Now a failure that may have been
/// A's has B renamed over itself (so mcrouter surely tries B), and B runs.
#[test]
fn a_failed_load_of_an_earlier_write_is_not_blamed_on_the_newer_one() {
    let mut r = Run::new(run_settings());
    let z = r.confirmed_start("10.0.0.1");
    let _a = r.next_write("10.0.0.2", 2);
    let b = r.next_write("10.0.0.3", 3);
    r.act(Event::Tick);
    // mcrouter tried A and failed: its count grew, it still runs Z.
    let verdict = r.feed(runs(&z, 1));
    assert!(
        matches!(reports(&verdict)[..], [Report::Reoffering { md5: m, .. }] if *m == md5(&b)),
        "{verdict:?}"
    );
    match acts(&verdict)[..] {
        [
            Action::Write {
                generation: 3,
                bytes,
                force: true,
            },
        ] => assert_eq!(bytes, &b, "B, renamed over itself"),
        ref other => panic!("{other:?}"),
    }
    let again = r.feed(Event::Wrote {
        generation: 3,
        result: Ok(Wrote::Replaced),
    });
    assert!(
        matches!(reports(&again)[..], [Report::Reoffered { .. }]),
        "{again:?}"
    );
    // mcrouter loads B: confirmed, nothing blocked, Z never written back.
    r.now += POLL;
    r.act(Event::Tick);
    let ok = r.feed(runs(&b, 1));
    assert!(
        matches!(reports(&ok)[..], [Report::Confirmed { md5: m, .. }] if *m == md5(&b)),
        "{ok:?}"
    );
    assert!(r.engine.rejected.is_none());
    assert!(r.engine.in_sync());
}

/// Once B was offered again, its own failure is a rejection: Z, which runs, is written back.
#[test]
fn after_the_newer_write_is_offered_again_its_own_failure_is_a_rejection() {
    let mut r = Run::new(run_settings());
    let z = r.confirmed_start("10.0.0.1");
    r.next_write("10.0.0.2", 2);
    let b = r.next_write("10.0.0.3", 3);
    r.act(Event::Tick);
    r.feed(runs(&z, 1));
    r.feed(Event::Wrote {
        generation: 3,
        result: Ok(Wrote::Replaced),
    });
    r.now += POLL;
    r.act(Event::Tick);
    let verdict = r.feed(runs(&z, 2));
    assert!(
        matches!(reports(&verdict)[..], [Report::Rejected { md5: m, restoring: true, .. }] if *m == md5(&b)),
        "{verdict:?}"
    );
    assert_eq!(written(&verdict, 4), z);
}

/// A write made while no other was awaited is the only one mcrouter can have tried: its
/// failure is its rejection at once.
#[test]
fn a_lone_writes_failure_is_its_rejection() {
    let mut r = Run::new(run_settings());
    let z = r.confirmed_start("10.0.0.1");
    let b = r.next_write("10.0.0.2", 2);
    r.act(Event::Tick);
    let verdict = r.feed(runs(&z, 1));
    assert!(
        matches!(reports(&verdict)[..], [Report::Rejected { md5: m, .. }] if *m == md5(&b)),
        "{verdict:?}"
    );
}

/// Regression: a failed repair write (the output deleted, then a full disk) was retried as a
/// render, which equalled the config in force, so nothing was written until the next template
/// read, although the log said "retrying".
#[test]
fn a_failed_repair_is_retried_as_a_repair() {
    let mut r = Run::new(settings());
    let bytes = r.first_write("10.0.0.1");
    let read = r.feed(Event::Template(Ok(ONE_TOKEN.into())));
    assert_eq!(written(&read, 1), bytes);
    let failed = r.feed(Event::Wrote {
        generation: 1,
        result: Err(
            "output /x: cannot create a temp file beside it: No space left on device".into(),
        ),
    });
    assert!(matches!(reports(&failed)[..], [Report::WriteFailed { .. }]));
    assert_eq!(r.engine.next_wake(), r.now + MIN);
    assert_eq!(r.engine.status(r.now).retrying, Some("repair"));
    r.now += MIN;
    let retry = r.feed(Event::Tick);
    assert_eq!(written(&retry, 1), bytes, "{retry:?}");
    let done = r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Replaced),
    });
    assert!(
        matches!(reports(&done)[..], [Report::Repaired { .. }]),
        "{done:?}"
    );
}

/// Regression: a rename that succeeded but whose directory fsync failed was reported as a
/// failed write ("the old file is intact") and retried, while mcrouter already read the new
/// file.
#[test]
fn a_write_whose_directory_fsync_failed_counts_as_written_with_durability_in_doubt() {
    let mut r = Run::new(settings());
    r.act(Event::Tick);
    let bytes = written(&r.act(answer("10.0.0.1")), 1);
    let done = r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Unsynced(
            "cannot fsync the directory: Input/output error".into(),
        )),
    });
    assert!(
        matches!(
            reports(&done)[..],
            [Report::Wrote { .. }, Report::Unsynced { reason, .. }] if reason.contains("fsync")
        ),
        "{done:?}"
    );
    assert_eq!(r.engine.status(r.now).written_md5, Some(md5(&bytes)));
    assert_eq!(r.engine.status(r.now).retrying, None);
}

/// Regression: after mcrouter lost its watch, the restart wrote the file back only if no
/// lookup was in flight; otherwise mcrouter started on a missing file and exited, and mcw with
/// it. A start now carries the bytes to put on disk first, whatever is in flight.
#[test]
fn a_restart_starts_mcrouter_on_the_config_in_force_whatever_lookups_are_in_flight() {
    let mut r = Run::new(run_settings());
    let bytes = r.confirmed_start("10.0.0.1");
    assert!(r.engine.confirmed());
    // SIGHUP: lookups go out (and stay in flight) and the disk is due a check.
    let hup = r.act(Event::Refresh);
    assert!(hup.contains(&Action::Lookup(vec![query()])));
    assert_eq!(r.act(Event::ChildExited), []);
    assert!(!r.engine.confirmed(), "what the old mcrouter said is gone");
    assert_eq!(
        r.act(Event::Restart),
        [Action::StartChild {
            bytes: bytes.clone()
        }]
    );
    // The write before the start failed: nothing starts, and it is tried again later.
    let failed = r.feed(Event::StartFailed(
        "output /x: cannot rename into place: EIO".into(),
    ));
    assert!(
        matches!(reports(&failed)[..], [Report::StartDeferred { .. }]),
        "{failed:?}"
    );
    assert_eq!(acts(&failed), Vec::<&Action>::new());
    assert_eq!(r.engine.next_wake(), r.now + MIN);
    r.now += MIN;
    let again = r.act(Event::Tick);
    assert!(
        again.contains(&Action::StartChild {
            bytes: bytes.clone()
        }),
        "{again:?}"
    );
    r.act(Event::ChildStarted);
    // Ready again only once the new mcrouter reports the config.
    assert!(!r.engine.confirmed());
    r.now += POLL;
    assert!(r.act(Event::Tick).contains(&Action::AskMcrouter));
    r.feed(runs(&bytes, 0));
    assert!(r.engine.confirmed());
}

/// A restart while a candidate is being validated starts on the config in force, not on the
/// candidate, and does not wait for the validator.
#[test]
fn a_restart_during_a_validation_starts_on_the_config_in_force() {
    let mut r = Run::new(supervised(|s| {
        s.validate_timeout = Some(Duration::from_secs(10))
    }));
    r.act(Event::Tick);
    r.act(answer("10.0.0.1"));
    r.act(Event::Validated {
        generation: 1,
        result: Ok(()),
    });
    let first = r.feed(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Replaced),
    });
    let Some(Action::StartChild { bytes }) = acts(&first).first().copied() else {
        panic!("{first:?}");
    };
    let bytes = bytes.clone();
    r.act(Event::ChildStarted);
    let next = r.refreshed("10.0.0.2");
    assert!(
        next.iter()
            .any(|a| matches!(a, Action::Validate { generation: 2, .. }))
    );
    r.act(Event::ChildExited);
    assert_eq!(r.act(Event::Restart), [Action::StartChild { bytes }]);
}

/// mcrouter that exited is not started again until the loop says so (its backoff), and
/// writes go on meanwhile.
#[test]
fn a_down_mcrouter_is_started_only_on_restart_and_on_the_latest_config() {
    let mut r = Run::new(run_settings());
    r.confirmed_start("10.0.0.1");
    r.act(Event::ChildExited);
    let b = r.next_write("10.0.0.2", 2);
    assert_eq!(r.engine.status(r.now).child, Some("down"));
    assert_eq!(r.act(Event::Restart), [Action::StartChild { bytes: b }]);
}

const WARM: Duration = Duration::from_secs(30);

/// `watch` with `--warm-up 30s` (allowance 1 s).
fn warm_settings() -> Settings {
    Settings {
        warm_up: Some(WarmUpSettings {
            duration: WARM,
            copy_ttl: Duration::from_secs(900),
            allowance: Duration::from_secs(1),
        }),
        ..settings()
    }
}

/// The actions' write, with its generation and bytes.
fn the_write(actions: &[Action]) -> (u64, Vec<u8>) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Write {
                generation, bytes, ..
            } => Some((*generation, bytes.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write in {actions:?}"))
}

/// Tick at every wake until a write comes (the periodic template reads are left unanswered).
fn tick_to_write(r: &mut Run) -> Vec<Action> {
    for _ in 0..10 {
        r.now = r.engine.next_wake();
        let actions = r.feed(Event::Tick);
        if actions.iter().any(|a| matches!(a, Action::Write { .. })) {
            return actions;
        }
    }
    panic!("no write came")
}

/// A growth of the pool under `--warm-up`: the first bracket, the warm-up and the last bracket,
/// each lasting from its write (nothing confirms in `watch`), then the plain config, byte for
/// byte the render without warm-up, its pool change told from the start.
#[test]
fn a_changed_pool_goes_through_three_phases_then_the_plain_config() {
    let mut r = Run::new(warm_settings());
    r.first_write("10.0.0.1");
    r.now += Duration::from_secs(34);
    r.act(Event::Tick);
    let started = r.feed(addrs(&["10.0.0.1", "10.0.0.2"]));
    assert!(
        matches!(&reports(&started)[..], [Report::Rendered { .. }, Report::WarmUpStarted { pools, .. }] if pools[0].slots == [1]),
        "{started:?}"
    );
    let (generation, first) = the_write(&started);
    assert!(String::from_utf8_lossy(&first).contains("a.mcw-route"));
    let timer = r.feed(Event::Wrote {
        generation,
        result: Ok(Wrote::Replaced),
    });
    // The bracket: the token's longest refresh (TTL 30 s, +10 %) and the allowance.
    let bracket = Duration::from_secs(33) + Duration::from_secs(1);
    assert!(
        reports(&timer).contains(&&Report::WarmUpTimer {
            phase: "first_bracket",
            lasts: bracket
        }),
        "{timer:?}"
    );
    assert_eq!(
        r.engine.status(r.now).warm_up.map(|w| w.phase),
        Some("first_bracket")
    );
    let mut phases = vec![first];
    for (phase, lasts) in [("warm_up", WARM), ("last_bracket", bracket)] {
        let next = tick_to_write(&mut r);
        let (generation, bytes) = the_write(&next);
        let ran = r.feed(Event::Wrote {
            generation,
            result: Ok(Wrote::Replaced),
        });
        assert!(
            reports(&ran).contains(&&Report::WarmUpTimer { phase, lasts }),
            "{ran:?}"
        );
        phases.push(bytes);
    }
    let last = tick_to_write(&mut r);
    assert!(
        reports(&last)
            .iter()
            .any(|r| matches!(r, Report::WarmUpFinished { .. })),
        "{last:?}"
    );
    let (generation, plain) = the_write(&last);
    let done = r.feed(Event::Wrote {
        generation,
        result: Ok(Wrote::Replaced),
    });
    assert!(
        matches!(&reports(&done)[..], [Report::PoolChanged { added, .. }, Report::Wrote { .. }] if added == &["10.0.0.2:11211"]),
        "{done:?}"
    );
    // The plain config is exactly what a render without warm-up writes.
    let mut without = Run::new(settings());
    without.first_write("10.0.0.1");
    without.now += Duration::from_secs(34);
    without.act(Event::Tick);
    assert_eq!(
        the_write(&without.feed(addrs(&["10.0.0.1", "10.0.0.2"]))).1,
        plain
    );
    assert_eq!(
        phases
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );
    assert!(r.engine.status(r.now).warm_up.is_none());
}

/// A change during a warm-up waits for its end (said once), then gets a warm-up of its own.
#[test]
fn a_change_during_a_warm_up_waits_for_its_end() {
    let mut r = Run::new(warm_settings());
    r.first_write("10.0.0.1");
    r.now += Duration::from_secs(34);
    r.act(Event::Tick);
    let (generation, _) = the_write(&r.feed(addrs(&["10.0.0.1", "10.0.0.2"])));
    r.feed(Event::Wrote {
        generation,
        result: Ok(Wrote::Replaced),
    });
    // DNS changes again meanwhile: nothing is written; it is said once.
    r.now += Duration::from_secs(2);
    let waiting = r.feed(addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
    assert_eq!(writes(&waiting), 0, "{waiting:?}");
    assert!(matches!(
        reports(&waiting)[..],
        [Report::WarmUpDeferring {
            phase: "first_bracket"
        }]
    ));
    // Through to the end of the first warm-up.
    for _ in 0..3 {
        let (generation, _) = the_write(&tick_to_write(&mut r));
        r.feed(Event::Wrote {
            generation,
            result: Ok(Wrote::Replaced),
        });
    }
    // The next change starts at once, as a warm-up of its own from the plain config.
    assert!(
        r.engine
            .status(r.now)
            .warm_up
            .is_some_and(|w| w.phase == "first_bracket")
    );
}

/// A pod that moved to a new IP whose old address does not answer is not warmed from: the
/// change is written plainly, and said why.
#[test]
fn an_old_server_that_does_not_answer_is_not_warmed_from() {
    let mut r = Run::new(warm_settings());
    r.first_write("10.0.0.1");
    r.now += Duration::from_secs(34);
    r.act(Event::Tick);
    let probe = r.feed(addrs(&["10.0.0.9"]));
    assert!(
        probe.contains(&Action::Probe {
            servers: vec!["10.0.0.1:11211".into()]
        }),
        "{probe:?}"
    );
    let plain = r.feed(Event::Probed(Default::default()));
    assert!(
        matches!(&reports(&plain)[..], [Report::WarmUpSkipped { skipped }] if skipped[0].1.contains("answered")),
        "{plain:?}"
    );
    assert!(!String::from_utf8_lossy(&the_write(&plain).1).contains("mcw-"));
}

/// `run`: a phase runs from mcrouter's confirmation; a phase mcrouter rejects ends the
/// warm-up, and the plain config follows without one.
#[test]
fn a_rejected_phase_abandons_the_warm_up_for_the_plain_config() {
    let mut s = warm_settings();
    s.supervision = run_settings().supervision;
    let mut r = Run::new(s);
    let a = r.confirmed_start("10.0.0.1");
    r.now += Duration::from_secs(34);
    r.act(Event::Tick);
    let (generation, first) = the_write(&r.feed(addrs(&["10.0.0.1", "10.0.0.2"])));
    let written = r.feed(Event::Wrote {
        generation,
        result: Ok(Wrote::Replaced),
    });
    assert!(
        !reports(&written)
            .iter()
            .any(|r| matches!(r, Report::WarmUpTimer { .. })),
        "the phase waits for mcrouter's word: {written:?}"
    );
    r.act(Event::Tick);
    let ran = r.feed(runs(&first, 0));
    assert!(reports(&ran).iter().any(|r| matches!(
        r,
        Report::WarmUpTimer {
            phase: "first_bracket",
            ..
        }
    )));
    // The next phase is rejected: A, which mcrouter runs, is written back, the warm-up ends.
    let (generation, second) = the_write(&tick_to_write(&mut r));
    r.feed(Event::Wrote {
        generation,
        result: Ok(Wrote::Replaced),
    });
    r.act(Event::Tick);
    let rejected = r.feed(runs(&first, 1));
    assert!(
        reports(&rejected)
            .iter()
            .any(|r| matches!(r, Report::WarmUpAbandoned { .. })),
        "{rejected:?}"
    );
    let (generation, restored) = the_write(&rejected);
    assert_eq!(restored, first);
    assert_ne!(restored, second);
    let plain = r.feed(Event::Wrote {
        generation,
        result: Ok(Wrote::Replaced),
    });
    let (_, bytes) = the_write(&plain);
    assert!(
        !String::from_utf8_lossy(&bytes).contains("mcw-"),
        "{plain:?}"
    );
    let _ = a;
}

/// The propagation of a DNS change: from the answer that brought it to the first write that
/// carries it, and to mcrouter running it; the first answer and a change that renders the
/// same bytes are no propagation.
#[test]
fn a_dns_change_is_timed_from_its_answer_to_the_write_and_to_mcrouter_running_it() {
    let propagation = |actions: &[Action]| -> Vec<(&'static str, Duration)> {
        reports(actions)
            .into_iter()
            .filter_map(|r| match r {
                Report::Wrote {
                    propagation: Some(d),
                    ..
                } => Some(("written", *d)),
                Report::Confirmed {
                    propagation: Some(d),
                    ..
                } => Some(("confirmed", *d)),
                _ => None,
            })
            .collect()
    };
    let mut r = Run::new(run_settings());
    // The first answer is the start, not a change.
    let first = r.first_write("10.0.0.1");
    r.act(Event::ChildStarted);
    r.act(Event::Tick);
    assert_eq!(propagation(&r.feed(runs(&first, 0))), []);
    // A change: answered, written 300 ms later, run 1.2 s after the answer.
    let changed = r.refreshed("10.0.0.2");
    let at = r.now;
    let bytes = written(&changed, 2);
    r.now = at + Duration::from_millis(300);
    let wrote = r.feed(Event::Wrote {
        generation: 2,
        result: Ok(Wrote::Replaced),
    });
    assert_eq!(
        propagation(&wrote),
        [("written", Duration::from_millis(300))]
    );
    r.now = at + Duration::from_millis(1200);
    r.act(Event::Tick);
    let ran = r.feed(runs(&bytes, 0));
    assert_eq!(
        propagation(&ran),
        [("confirmed", Duration::from_millis(1200))]
    );
    // The same records again: nothing to time.
    assert_eq!(propagation(&r.refreshed("10.0.0.2")), []);
    // A change whose config mcrouter rejects never runs: no confirmed propagation, and the
    // restore that follows is not one either.
    let rejected = written(&r.refreshed("10.0.0.3"), 3);
    r.act(Event::Wrote {
        generation: 3,
        result: Ok(Wrote::Replaced),
    });
    r.now += POLL;
    r.act(Event::Tick);
    let verdict = r.feed(runs(&bytes, 1));
    assert!(
        matches!(reports(&verdict)[..], [Report::Rejected { md5, .. }] if *md5 == md5_hex(&rejected))
    );
    r.act(Event::Wrote {
        generation: 4,
        result: Ok(Wrote::Replaced),
    });
    r.now += POLL;
    r.act(Event::Tick);
    assert_eq!(propagation(&r.feed(runs(&bytes, 1))), []);
}

/// The last reload's outcome: a refused template edit, a rejected config and a failed write
/// fail it; mcrouter running the new config, or a good edit that renders what runs already,
/// makes it succeed again.
#[test]
fn the_last_reload_is_a_refused_edit_a_rejection_or_a_failed_write_until_one_works() {
    let mut r = Run::new(run_settings());
    let last = |r: &Run| {
        let s = r.engine.status(r.now);
        (s.last_reload_ok, s.since_reload_success)
    };
    assert_eq!(last(&r), (None, None));
    let first = r.confirmed_start("10.0.0.1");
    assert_eq!(last(&r), (Some(true), Some(Duration::ZERO)));
    // A broken edit (each read of the template also has the file checked: it holds the
    // config in force).
    let unchanged = Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Unchanged),
    };
    r.now += Duration::from_secs(3);
    r.act(Event::Template(Ok("{ broken".into())));
    r.act(unchanged);
    assert_eq!(last(&r), (Some(false), Some(Duration::from_secs(3))));
    // Put back as it was: the render is what runs, so the edit is in force.
    r.act(Event::Template(Ok(ONE_TOKEN.into())));
    assert_eq!(last(&r), (Some(true), Some(Duration::ZERO)));
    r.act(answer("10.0.0.1"));
    r.act(Event::Wrote {
        generation: 1,
        result: Ok(Wrote::Unchanged),
    });
    // A config mcrouter rejects.
    let _ = written(&r.refreshed("10.0.0.2"), 2);
    r.act(Event::Wrote {
        generation: 2,
        result: Ok(Wrote::Replaced),
    });
    assert_eq!(last(&r).0, Some(true), "no word yet");
    r.now += POLL;
    r.act(Event::Tick);
    r.act(runs(&first, 1));
    assert_eq!(last(&r).0, Some(false));
    // The restore of what runs is confirmed, but it is not a reload.
    r.act(Event::Wrote {
        generation: 3,
        result: Ok(Wrote::Replaced),
    });
    r.now += POLL;
    r.act(Event::Tick);
    r.act(runs(&first, 1));
    assert_eq!(last(&r).0, Some(false));
    // A new change that runs.
    let next = written(&r.refreshed("10.0.0.3"), 4);
    r.act(Event::Wrote {
        generation: 4,
        result: Ok(Wrote::Replaced),
    });
    r.now += POLL;
    r.act(Event::Tick);
    r.act(runs(&next, 1));
    assert_eq!(last(&r), (Some(true), Some(Duration::ZERO)));
    // A write that fails.
    let _ = written(&r.refreshed("10.0.0.4"), 5);
    r.act(Event::Wrote {
        generation: 5,
        result: Err("No space left on device".into()),
    });
    assert_eq!(last(&r).0, Some(false));
}

/// With nothing to confirm with (`watch`), a reload is done once written.
#[test]
fn in_watch_mode_a_reload_succeeds_once_written() {
    let mut r = Run::new(settings());
    r.first_write("10.0.0.1");
    let s = r.engine.status(r.now);
    assert_eq!(s.last_reload_ok, Some(true));
    let changed = r.refreshed("10.0.0.2");
    let at = r.now;
    let _ = written(&changed, 2);
    r.now = at + Duration::from_millis(40);
    let wrote = r.feed(Event::Wrote {
        generation: 2,
        result: Ok(Wrote::Replaced),
    });
    assert!(matches!(reports(&wrote)[..],
        [.., Report::Wrote { propagation: Some(d), .. }] if *d == Duration::from_millis(40)));
}

//! The piece pickers of the real `rivulet` binary against a real aria2 seeder found through
//! opentracker: each built-in chosen through the config file, the environment or the command
//! line (and which wins), a built-in's loadable twin overriding it from `plugin_dirs`, and the
//! third-party example picker. The order of `piece_verified` events shows which picker ran: the
//! fixture has 289 pieces and one seeder holding all of them, so rarest-first (random among
//! equally rare pieces) verifies them in a shuffled order, sequential in increasing order and
//! reverse in decreasing order; a few pieces in flight together may finish out of turn.

mod plugins_support;

use std::time::Duration;

use plugins_support::{
    assert_each_piece_once, config, fetch, in_order_share, inversions, list_plugins, started,
    toml_paths, verified_order,
};
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::events::Events;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::plugin_libs::{plugin_dir, reverse_example, twin};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;

/// Least share of the pieces that must have been verified in order (the longest increasing, or
/// for reverse decreasing, subsequence) for a run to count as sequential. The pieces a
/// still-choking aria2 seeder allows us (BEP 6 allowed-fast, 8 of 289 here) may come first and
/// lie anywhere in the file, and a few pieces in flight together may finish out of turn; a random
/// order keeps about 2·sqrt(289) = 34 pieces in order, 0.12. (Counting inverted pairs instead
/// failed in CI: eight allowed-fast pieces from the file's end alone invert 0.05 of all pairs.)
const IN_ORDER: f64 = 0.9;
/// Least a rarest-first run must stray from increasing order. The expected value is 0.5; a
/// random permutation of 289 pieces falls below 0.3 with negligible probability.
const SHUFFLED: f64 = 0.3;

/// The direction a picker walks the file.
#[derive(Clone, Copy)]
enum Walk {
    Increasing,
    Decreasing,
}

fn assert_in_order(events: &Events, fixture: &Fixture, who: &str, walk: Walk) {
    let order = verified_order(events);
    assert_each_piece_once(&order, fixture, who);
    let (kept, way) = match walk {
        Walk::Increasing => (in_order_share(order.iter().copied()), "increasing"),
        Walk::Decreasing => (in_order_share(order.iter().rev().copied()), "decreasing"),
    };
    eprintln!("{who}: {kept:.3} of the pieces verified in {way} order");
    assert!(
        kept >= IN_ORDER,
        "{who}: pieces not verified in (nearly) {way} order: {kept:.3} in order; order {order:?}"
    );
}

fn assert_shuffled(events: &Events, fixture: &Fixture, who: &str) {
    let order = verified_order(events);
    assert_each_piece_once(&order, fixture, who);
    let inv = inversions(&order);
    eprintln!("{who}: {inv:.3} of piece pairs verified out of order");
    assert!(
        (SHUFFLED..=1.0 - SHUFFLED).contains(&inv),
        "{who}: expected a shuffled order, {inv:.3} of pairs inverted; order {order:?}"
    );
}

#[test]
fn each_builtin_picker_chosen_a_different_way_downloads_in_its_own_order() {
    let work = WorkDir::new("plugins-builtins");
    let fixture = Fixture::multi();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);

    let file = config(&work, "sequential.toml", r#"picker = "sequential""#);
    let by_file = fetch(&work, fixture, &torrent, "by-file", |d| d.config(&file));
    assert_eq!(started(&by_file), ("sequential".into(), "mmap".into()));
    assert_in_order(
        &by_file,
        fixture,
        "picker = \"sequential\" in --config",
        Walk::Increasing,
    );

    let state = work.join("state");
    let by_env = fetch(&work, fixture, &torrent, "by-env", |d| {
        d.env("RIVULET_PICKER", "rarest-first")
            .env("RIVULET_STATE_DIR", &state)
    });
    assert_eq!(started(&by_env), ("rarest-first".into(), "mmap".into()));
    assert_shuffled(&by_env, fixture, "RIVULET_PICKER=rarest-first");

    let by_flag = fetch(&work, fixture, &torrent, "by-flag", |d| {
        d.picker("streaming").env("RIVULET_STATE_DIR", &state)
    });
    assert_eq!(started(&by_flag), ("streaming".into(), "mmap".into()));
    // Without readers there are no deadlines, and streaming picks like rarest-first.
    assert_shuffled(&by_flag, fixture, "--picker streaming");
}

#[test]
fn picker_precedence_is_flag_over_environment_over_file() {
    let work = WorkDir::new("plugins-precedence");
    let fixture = Fixture::multi_small();
    // Nobody answers at this tracker: only the `started` event matters here.
    let torrent = fixture.torrent("http://127.0.0.1:1/announce", "nowhere", work.path());
    let file = config(&work, "sequential.toml", r#"picker = "sequential""#);
    let cases: [(&str, Option<&str>, Option<&str>, &str); 4] = [
        ("file", None, None, "sequential"),
        ("env-over-file", Some("rarest-first"), None, "rarest-first"),
        ("flag-over-file", None, Some("streaming"), "streaming"),
        (
            "flag-over-env",
            Some("rarest-first"),
            Some("sequential"),
            "sequential",
        ),
    ];
    for (tag, env, flag, want) in cases {
        let events = work.join(&format!("{tag}.jsonl"));
        let mut d = Download::new(&torrent, &work.subdir(tag))
            .config(&file)
            .listen(free_addr(LOCALHOST))
            .events(&events);
        if let Some(picker) = env {
            d = d.env("RIVULET_PICKER", picker);
        }
        if let Some(picker) = flag {
            d = d.picker(picker);
        }
        let mut run = d.spawn(work.path(), tag);
        run.wait_events(Duration::from_secs(30), "the started event", |e| {
            e.has("started")
        });
        assert_eq!(started(&run.events()).0, want, "{tag}");
        run.proc.kill_hard();
    }
}

#[test]
fn loaded_twins_override_the_builtins_and_download_alike() {
    let work = WorkDir::new("plugins-twins");
    let picker = twin("rivulet-picker-sequential");
    let storage = twin("rivulet-storage-mmap");
    let dir = work.join("plugins");
    let copies = plugin_dir(&dir, &[&picker, &storage]);
    let with_twins = config(
        &work,
        "twins.toml",
        &format!(
            "plugin_dirs = {}\npicker = \"sequential\"\nstorage = \"mmap\"",
            toml_paths(&[&dir])
        ),
    );

    let (listed, _) = list_plugins(&work, &with_twins);
    for (kind, name, copy) in [
        ("picker", "sequential", &copies[0]),
        ("storage", "mmap", &copies[1]),
    ] {
        let copy = copy.display().to_string();
        let find = |builtin: bool| {
            listed
                .iter()
                .find(|l| l.kind == kind && l.name == name && (l.source == "built-in") == builtin)
                .unwrap_or_else(|| {
                    panic!("{kind} {name} (built-in: {builtin}) not listed: {listed:?}")
                })
        };
        let loaded = find(false);
        assert_eq!(
            (loaded.source.as_str(), loaded.status.as_str()),
            (copy.as_str(), "ok")
        );
        assert_eq!(find(true).status, format!("overridden by {copy}"));
    }

    let fixture = Fixture::multi();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let loaded = fetch(&work, fixture, &torrent, "loaded", |d| {
        d.config(&with_twins)
    });
    assert_eq!(started(&loaded), ("sequential".into(), "mmap".into()));
    assert_in_order(&loaded, fixture, "loaded sequential twin", Walk::Increasing);

    let builtin = config(&work, "builtin.toml", "picker = \"sequential\"");
    let linked = fetch(&work, fixture, &torrent, "linked", |d| d.config(&builtin));
    assert_in_order(&linked, fixture, "linked-in sequential", Walk::Increasing);

    // The loaded storage rebuilds the state from the files alone (no resume file in a fresh
    // state dir): reads and has_data through the boundary find every piece, nothing is fetched.
    let rehash = config(
        &work,
        "rehash.toml",
        &format!("plugin_dirs = {}", toml_paths(&[&dir])),
    );
    let fresh_state = work.join("fresh-state");
    let again = fetch(&work, fixture, &torrent, "loaded", |d| {
        d.config(&rehash).env("RIVULET_STATE_DIR", &fresh_state)
    });
    assert_eq!(
        again.resumed(),
        Some(fixture.meta.piece_count() as u64),
        "the loaded mmap storage did not find the complete data:\n{}",
        again.tail(10)
    );
    assert_eq!(again.verified_count(), 0, "pieces were fetched again");
}

#[test]
fn third_party_reverse_picker_downloads_in_decreasing_order() {
    let work = WorkDir::new("plugins-reverse");
    let dir = work.join("plugins");
    plugin_dir(&dir, &[&reverse_example()]);
    let cfg = config(
        &work,
        "reverse.toml",
        &format!(
            "plugin_dirs = {}\npicker = \"reverse\"",
            toml_paths(&[&dir])
        ),
    );
    let fixture = Fixture::multi();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let events = fetch(&work, fixture, &torrent, "reverse", |d| d.config(&cfg));
    assert_eq!(started(&events), ("reverse".into(), "mmap".into()));
    assert_in_order(&events, fixture, "reverse", Walk::Decreasing);
}

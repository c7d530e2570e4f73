//! Picks per second of the built-in pickers on 100,000 pieces and 50 peers that each hold a
//! random ~50% of the pieces, linked in and through the dynamic-plugin boundary.
//!
//! Each step asks one peer (round robin) for a piece; picked pieces stay in progress in a ring of
//! 256 and the oldest is handed back with `piece_lost` when the ring is full, so the picker runs
//! in a steady state with in-progress pieces, as in a download. One step = one `pick` plus one
//! `piece_lost`. The dynamic rows load each picker's loadable twin (the same crate built as a
//! cdylib with its `dynamic` feature, which this benchmark builds first with cargo into
//! `target/dynamic-plugins`) through the loader, exactly as `plugin_dirs` would.
//!
//! Run with `cargo bench -p rivulet-picker-rarest-first`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::PiecePicker;
use rivulet_core::plugin::abi::picker::DynPicker;
use rivulet_core::plugin::loader::{self, Loaded};
use rivulet_picker_rarest_first::RarestFirst;
use rivulet_picker_sequential::Sequential;
use rivulet_picker_streaming::Streaming;

const PIECES: u32 = 100_000;
const PEERS: u32 = 50;
const IN_FLIGHT: usize = 256;
const DEADLINES: u32 = 20;
const RUN: Duration = Duration::from_secs(1);

/// `PEERS` bitfields, each piece held with probability `percent` %.
fn swarm(percent: u8) -> Vec<Bitfield> {
    let mut rng = fastrand::Rng::with_seed(99);
    (0..PEERS)
        .map(|_| {
            let mut b = Bitfield::new(PIECES);
            for i in 0..PIECES {
                if rng.u8(..100) < percent {
                    b.set(i);
                }
            }
            b
        })
        .collect()
}

/// Steps per second.
fn bench(name: &str, mut picker: impl PiecePicker, peers: &[Bitfield], deadlines: bool) -> f64 {
    let setup = Instant::now();
    picker.init(PIECES, &Bitfield::new(PIECES));
    for (peer, has) in peers.iter().enumerate() {
        picker.peer_bitfield(peer as u32, has);
    }
    if deadlines {
        // Readahead-like: a run of pieces in the middle of the torrent, due one after another.
        for k in 0..DEADLINES {
            picker.set_deadline(50_000 + k, Some(1_000 + 40 * k as u64));
        }
    }
    let setup = setup.elapsed();

    let mut ring = VecDeque::with_capacity(IN_FLIGHT);
    let (mut steps, mut misses) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < RUN {
        for _ in 0..4096 {
            let peer = (steps % PEERS as u64) as u32;
            match black_box(picker.pick(peer)) {
                Some(piece) => ring.push_back(piece),
                None => misses += 1,
            }
            if let Some(old) = (ring.len() == IN_FLIGHT)
                .then(|| ring.pop_front())
                .flatten()
            {
                picker.piece_lost(old);
            }
            steps += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = steps as f64 / secs;
    println!(
        "{name:<34} {:>12.0} picks/s  ({:>6.1} ns/step, {steps} steps, {misses} empty picks; \
         init + {PEERS} bitfields {:.1} ms)",
        rate,
        secs * 1e9 / steps as f64,
        setup.as_secs_f64() * 1e3,
    );
    rate
}

/// Builds the loadable twin of `crate_name` (release, `dynamic` feature) into
/// `target/dynamic-plugins` and loads it.
fn twin(crate_name: &str) -> DynPicker {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<bench>
    let target = exe
        .ancestors()
        .nth(3)
        .expect("bench lives in target/<profile>/deps");
    let target = target.join("dynamic-plugins");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--offline",
            "--release",
            "-p",
            crate_name,
            "--features",
        ])
        .arg(format!("{crate_name}/dynamic"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the {crate_name} twin failed");
    let lib: PathBuf = target
        .join("release")
        .join(format!("lib{}.so", crate_name.replace('-', "_")));
    match loader::load(&lib) {
        Ok(Loaded::Picker(factory)) => factory.create_dyn().expect("the twin creates a picker"),
        Ok(_) => panic!("{} is not a picker", lib.display()),
        Err(e) => panic!("{e}"),
    }
}

fn main() {
    println!(
        "{PIECES} pieces, {PEERS} peers with random ~50% bitfields; one step = pick + piece_lost \
         of the pick made {IN_FLIGHT} steps earlier"
    );
    let peers = swarm(50);
    let linked = [
        bench("rarest-first", RarestFirst::default(), &peers, false),
        bench("sequential", Sequential::default(), &peers, false),
        bench(
            "streaming (20 deadline pieces)",
            Streaming::default(),
            &peers,
            true,
        ),
    ];
    let names = [
        "rivulet-picker-rarest-first",
        "rivulet-picker-sequential",
        "rivulet-picker-streaming",
    ];
    let twins: Vec<DynPicker> = names.iter().map(|n| twin(n)).collect();
    let mut ratios = Vec::new();
    for ((twin, name), linked) in twins.into_iter().zip(names).zip(linked) {
        let short = name.trim_start_matches("rivulet-picker-");
        let label = format!("{short} (dynamic)");
        let rate = bench(&label, twin, &peers, short == "streaming");
        ratios.push((short, rate / linked));
    }
    for (name, ratio) in ratios {
        println!("{name:<34} dynamic/linked {ratio:.2}");
    }
    // Peers holding little make the bounded rarity scan give up more often, so the word pass
    // over the whole bitfield runs: the picker's slow path.
    let sparse = swarm(5);
    bench(
        "rarest-first, peers with ~5% each",
        RarestFirst::with_seed(1),
        &sparse,
        false,
    );
}

//! Ordinary programs on `rivulet mount` with the real engine and a real aria2 seeder: ffprobe and
//! ffmpeg on a real video (index at the end, so they seek), cp and cat, and two readers of
//! different files at once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::{lazy_mount, progress_xattr};
use rivulet_tests::process::{Proc, poll};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::verify::sha1_file;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(60);

/// Runs a program to the end (bounded), panicking with its stderr unless it succeeds.
fn run(work: &WorkDir, tag: &str, cmd: &mut Command) -> String {
    let out = work.join(&format!("{tag}.out"));
    let err = work.join(&format!("{tag}.err"));
    let mut proc = Proc::spawn_split(
        tag,
        std::mem::replace(cmd, Command::new("true")),
        &out,
        &err,
    );
    let st = proc.wait_exit(BOUND);
    assert!(
        st.success(),
        "{tag} failed ({st}): {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    std::fs::read_to_string(&out).unwrap_or_default()
}

#[test]
fn ffprobe_ffmpeg_cp_and_cat_work_on_a_mounted_video() {
    let fixture = Fixture::media();
    let work = WorkDir::new("mount-media");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let mount = lazy_mount(&work, &swarm);
    let video = mount.path(&fixture.files[0].rel);

    let probed = run(
        &work,
        "ffprobe",
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_name",
            ])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&video),
    );
    assert!(probed.contains("codec_name=mpeg4"), "{probed}");
    assert!(probed.contains("duration=10.0"), "{probed}");
    let after_probe = mount.status()["pieces_have"].as_u64().unwrap();
    assert!(
        after_probe < u64::from(fixture.meta.piece_count()),
        "ffprobe of a lazy mount fetched the whole file"
    );

    let png = work.join("frame.png");
    run(
        &work,
        "ffmpeg",
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-ss", "5", "-i"])
            .arg(&video)
            .args(["-frames:v", "1", "-y"])
            .arg(&png),
    );
    let frame = std::fs::read(&png).expect("ffmpeg wrote the frame");
    assert!(frame.starts_with(b"\x89PNG") && frame.len() > 1000);

    let copy = work.join("copy.mp4");
    run(&work, "cp", Command::new("cp").arg(&video).arg(&copy));
    assert_eq!(sha1_file(&copy).unwrap(), fixture.files[0].sha1_hex);
    let cat = work.join("cat.mp4");
    let file = std::fs::File::create(&cat).unwrap();
    let st = Command::new("cat")
        .arg(&video)
        .stdout(file)
        .stdin(Stdio::null())
        .status()
        .expect("run cat");
    assert!(st.success());
    assert_eq!(sha1_file(&cat).unwrap(), fixture.files[0].sha1_hex);
}

/// Starts `sha1sum PATH` in the background.
fn sha1sum(work: &WorkDir, tag: &str, path: &Path) -> Proc {
    let mut cmd = Command::new("sha1sum");
    cmd.arg(path);
    Proc::spawn_split(
        tag,
        cmd,
        &work.join(&format!("{tag}.out")),
        &work.join(&format!("{tag}.err")),
    )
}

fn have_pieces(progress: &str) -> u64 {
    progress
        .split(' ')
        .nth(1)
        .and_then(|f| f.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected progress attribute {progress:?}"))
}

#[test]
fn two_readers_of_different_files_both_progress_and_finish_right() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("mount-two-readers");
    // Slow enough that both reads are in flight together for a few seconds.
    let opts = SeederOptions::limited(4 << 20);
    let swarm = Swarm::start(&work, fixture, opts);
    let mount = lazy_mount(&work, &swarm);
    let (a, b) = (&fixture.files[1], &fixture.files[3]);
    let (pa, pb) = (mount.path(&a.rel), mount.path(&b.rel));
    let mut ra = sha1sum(&work, "sha1sum-a", &pa);
    let mut rb = sha1sum(&work, "sha1sum-b", &pb);
    // Both files gain pieces while both readers still run.
    poll(BOUND, || {
        let (ha, hb) = (
            have_pieces(&progress_xattr(&pa)),
            have_pieces(&progress_xattr(&pb)),
        );
        let msg = format!("a.bin {ha} pieces, b.bin {hb} pieces");
        if !(ra.is_running() && rb.is_running()) {
            Ok(Err(format!("a reader ended before both progressed: {msg}")))
        } else if ha > 0 && hb > 0 {
            Ok(Ok(()))
        } else {
            Err(msg)
        }
    })
    .and_then(|r| r)
    .unwrap_or_else(|e| panic!("the readers did not progress together: {e}"));
    for (proc, f, tag) in [(&mut ra, a, "sha1sum-a"), (&mut rb, b, "sha1sum-b")] {
        proc.wait_success(BOUND);
        let out = std::fs::read_to_string(work.join(&format!("{tag}.out"))).unwrap();
        assert!(
            out.starts_with(&f.sha1_hex),
            "{} through the mount: {out}",
            f.rel.display()
        );
    }
}

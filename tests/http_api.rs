//! `rivulet serve` through its HTTP API with real parts: an aria2 seeder behind opentracker, the
//! `rivulet` thin clients, curl, ffprobe and ffmpeg on `http://` URLs, and hostile raw requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::make_torrent::zeros;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::{Proc, wait_for};
use rivulet_tests::serve::Serve;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(60);

/// Runs a program to the end (bounded): its stdout, stderr and whether it succeeded.
fn run(work: &WorkDir, tag: &str, cmd: Command) -> (bool, String, String) {
    let (out, err) = (
        work.join(&format!("{tag}.out")),
        work.join(&format!("{tag}.err")),
    );
    let mut proc = Proc::spawn_split(tag, cmd, &out, &err);
    let ok = proc.wait_exit(BOUND).success();
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    (ok, read(&out), read(&err))
}

fn ok(work: &WorkDir, tag: &str, cmd: Command) -> String {
    let (success, out, err) = run(work, tag, cmd);
    assert!(success, "{tag} failed: {err}");
    out
}

fn curl(args: &[&str]) -> Command {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "60"]).args(args);
    c
}

/// `rivulet ARGS --server URL` (a thin client).
fn client(serve: &Serve, args: &[&str]) -> Command {
    let mut c = rivulet_tests::rivulet::command();
    c.args(args).args(["--server", &serve.url("")]);
    c
}

/// Lines of `GET /api/events`, as they arrive.
fn subscribe(addr: SocketAddr) -> mpsc::Receiver<String> {
    let mut s = TcpStream::connect(addr).expect("connect for events");
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send events request");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for an event line holding every one of `parts`.
fn wait_event(rx: &mpsc::Receiver<String>, parts: &[&str]) -> String {
    let deadline = Instant::now() + BOUND;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("data: ") && parts.iter().all(|p| line.contains(p)) => {
                return line;
            }
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!(
        "no event with {parts:?}; last lines: {:?}",
        &seen[seen.len().saturating_sub(10)..]
    );
}

#[test]
fn a_video_streams_over_http_while_downloading_and_the_api_and_clients_manage_it() {
    let fixture = Fixture::media();
    let work = WorkDir::new("http-api");
    // Slow enough that the download is still going while the players run.
    let opts = SeederOptions::limited(250_000);
    let swarm = Swarm::start(&work, fixture, opts);
    let serve = Serve::start(&work, "serve", &[]);
    let events = subscribe(serve.http);

    let torrent = swarm.torrent(&work, Announce::Http);
    let added = serve.add(&torrent);
    let hash = fixture.info_hash_hex();
    assert_eq!(added["info_hash"], hash.as_str());
    assert_eq!(added["name"], fixture.name());
    let file = &added["files"][0];
    assert_eq!(file["path"], fixture.files[0].rel.to_str().unwrap());
    assert_eq!(file["length"], fixture.files[0].len);
    let url = serve.url(file["stream_url"].as_str().expect("stream_url"));
    wait_event(&events, &["\"event\":\"added\"", &hash]);

    let listed = serve.get("/api/torrents").json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["info_hash"], hash.as_str());

    // Players on the http:// URL, while the torrent is still downloading.
    let mut probe = Command::new("ffprobe");
    probe
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
        ])
        .args(["-of", "default=noprint_wrappers=1", &url]);
    let probed = ok(&work, "ffprobe", probe);
    assert!(probed.contains("codec_name=mpeg4"), "{probed}");
    assert!(probed.contains("duration=10.0"), "{probed}");
    let have = serve.torrent(&hash)["bytes_have"].as_u64().unwrap();
    assert!(
        have < fixture.total_length(),
        "the download finished before ffprobe ran: slow the seeder down"
    );
    let png = work.join("frame.png");
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(["-nostdin", "-v", "error", "-ss", "5", "-i", &url])
        .args(["-frames:v", "1", "-y"])
        .arg(&png);
    ok(&work, "ffmpeg", ffmpeg);
    let frame = std::fs::read(&png).expect("ffmpeg wrote the frame");
    assert!(frame.starts_with(b"\x89PNG") && frame.len() > 1000);

    // Range reads at random offsets are the original bytes, with the right headers.
    let len = fixture.files[0].len;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in 0..8 {
        let start = rng.random_range(0..len);
        let end = (start + rng.random_range(1..300_000)).min(len) - 1;
        let (body, head) = (
            work.join(&format!("range{i}")),
            work.join(&format!("head{i}")),
        );
        let range = format!("{start}-{end}");
        let (b, h) = (body.to_str().unwrap(), head.to_str().unwrap());
        ok(
            &work,
            "curl-range",
            curl(&["-r", &range, "-D", h, "-o", b, &url]),
        );
        let head = std::fs::read_to_string(&head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 206"), "{head}");
        assert!(
            head.contains(&format!("content-range: bytes {start}-{end}/{len}")),
            "{head}"
        );
        assert!(head.contains(&format!("content-length: {}", end - start + 1)));
        let got = std::fs::read(&body).unwrap();
        let mut want = vec![0; (end - start + 1) as usize];
        fixture.read_at(start, &mut want).unwrap();
        assert!(got == want, "bytes {range} differ from the original");
    }

    // HEAD, an unsatisfiable range, and two requests on one kept-alive connection.
    let head = ok(&work, "curl-head", curl(&["-I", &url])).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {len}")), "{head}");
    assert!(head.contains("accept-ranges: bytes") && head.contains("content-type: video/mp4"));
    // A strong ETag: a resume with If-Range gets the rest, a stale tag or a date the whole
    // file, and revalidation 304.
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no etag: {head}"));
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let status = |tag: &str, args: &[&str]| {
        let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        all.push(&url);
        ok(&work, tag, curl(&all))
    };
    let if_range = format!("If-Range: {etag}");
    assert_eq!(
        status("curl-if-range", &["-r", "10-19", "-H", &if_range]),
        "206"
    );
    let stale = ["-r", "10-19", "-H", "If-Range: \"other\""];
    assert_eq!(status("curl-if-range-stale", &stale), "200");
    let date = [
        "-r",
        "10-19",
        "-H",
        "If-Range: Sun, 06 Dec 2026 06:00:00 GMT",
    ];
    assert_eq!(status("curl-if-range-date", &date), "200");
    let none_match = format!("If-None-Match: {etag}");
    assert_eq!(status("curl-if-none-match", &["-H", &none_match]), "304");
    let past = format!("{len}-");
    let code = ok(
        &work,
        "curl-416",
        curl(&["-r", &past, "-o", "/dev/null", "-w", "%{http_code}", &url]),
    );
    assert_eq!(code, "416");
    let (success, _, verbose) = run(
        &work,
        "curl-keepalive",
        curl(&[
            "-v",
            "-r",
            "0-9",
            "-o",
            "/dev/null",
            &url,
            "-r",
            "10-19",
            "-o",
            "/dev/null",
            &url,
        ]),
    );
    assert!(
        success && verbose.to_lowercase().contains("using existing connection"),
        "{verbose}"
    );

    // The thin clients, on the same server.
    let listed = ok(&work, "rivulet-list", client(&serve, &["list"]));
    assert!(
        listed.contains(&hash) && listed.contains(fixture.name()),
        "{listed}"
    );
    ok(
        &work,
        "rivulet-pause",
        client(&serve, &["pause", &hash[..8]]),
    );
    assert_eq!(serve.torrent(&hash)["state"], "paused");
    wait_event(&events, &["\"event\":\"paused\"", &hash]);
    ok(&work, "rivulet-resume", client(&serve, &["resume", &hash]));
    assert_ne!(serve.torrent(&hash)["state"], "paused");
    let json = ok(
        &work,
        "rivulet-list-json",
        client(&serve, &["list", "--json"]),
    );
    let parsed: serde_json::Value = serde_json::from_str(json.trim()).expect("--json is JSON");
    assert_eq!(parsed[0]["info_hash"], hash.as_str());
    ok(&work, "rivulet-remove", client(&serve, &["remove", &hash]));
    wait_event(&events, &["\"event\":\"removed\"", &hash]);
    assert_eq!(serve.get("/api/torrents").body, "[]");
    assert_eq!(serve.get(&format!("/api/torrents/{hash}")).status, 404);
    let data = serve.data.join(&fixture.files[0].rel);
    assert!(
        data.exists(),
        "remove without --delete-data deleted the data"
    );
    serve.add(&torrent);
    let flags = ["remove", &hash, "--delete-data"];
    ok(&work, "rivulet-remove-data", client(&serve, &flags));
    assert!(!data.exists(), "remove --delete-data kept the data");
}

/// Sends `request` on a fresh connection and returns everything the server answers before
/// it closes (or 20 s pass).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before a huge request is all sent.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> &str {
    answer.get(9..12).unwrap_or(answer)
}

#[test]
fn hostile_requests_get_clear_status_codes_and_the_server_keeps_serving() {
    let work = WorkDir::new("http-hostile");
    let serve = Serve::start(&work, "serve", &[]);
    let torrent = work.join("quiet.torrent");
    // No peer and no tracker: nothing is ever read, only named.
    std::fs::write(
        &torrent,
        zeros("quiet.bin", 1 << 20, 1 << 16, "http://127.0.0.1:1/a"),
    )
    .unwrap();
    let hash = serve.add(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let still_serving = || {
        let a = serve.get("/api/torrents");
        assert_eq!(a.status, 200, "the server stopped serving: {}", a.body);
    };

    // Paths can only name a torrent's files by index.
    for path in [
        format!("/stream/{hash}/../../../../etc/passwd"),
        format!("/stream/{hash}/%2e%2e/%2e%2e/etc/passwd"),
        format!("/stream/{hash}/1/quiet.bin"),
        format!("/stream/{hash}/-1/x"),
        "/stream/../../etc/passwd".to_string(),
        "/../../etc/passwd".to_string(),
        "/api/torrents/../../../etc/passwd".to_string(),
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let a = raw(serve.http, req.as_bytes());
        assert_eq!(status_of(&a), "404", "{path}: {a}");
        assert!(!a.contains("root:"), "{path} leaked a file: {a}");
    }

    // A head of 64 KiB is refused with 431.
    let huge = format!(
        "GET /api/torrents HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert_eq!(status_of(&raw(serve.http, huge.as_bytes())), "431");
    still_serving();

    // Bad uploads: not a torrent, too large, a magnet link (not supported yet).
    let bad = serve.post("/api/torrents", b"d4:spam");
    assert_eq!(bad.status, 400, "{}", bad.body);
    let error = bad.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("not a valid torrent") && !error.contains('\n'),
        "{error}"
    );
    // Refused on its announced length, before the client sends it all.
    let big = format!(
        "POST /api/torrents HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\nd8:announce",
        17 << 20
    );
    assert_eq!(status_of(&raw(serve.http, big.as_bytes())), "413");
    let magnet = serve.post("/api/torrents", b"magnet:?xt=urn:btih:0123456789");
    assert_eq!(magnet.status, 400, "{}", magnet.body);
    assert!(magnet.body.contains("info-hash"), "{}", magnet.body);
    still_serving();

    // A client that never finishes its request head is dropped; others are served meanwhile.
    let mut slow = TcpStream::connect(serve.http).unwrap();
    slow.write_all(b"GET /api/torrents HTTP/1.1\r\nHost:")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let began = Instant::now();
    still_serving();
    let mut sink = Vec::new();
    let _ = slow.read_to_end(&mut sink);
    let held = began.elapsed();
    assert!(
        held < Duration::from_secs(25),
        "a slow client held on for {held:?}"
    );

    // A thousand idle connections: the next client is still served, and the idle ones are
    // closed by the server.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(serve.http).expect("connect idle"))
        .collect();
    still_serving();
    // Past the connection cap a client is told 503 at once.
    let over: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(serve.http).expect("connect over the cap"))
        .collect();
    let refused = over
        .into_iter()
        .filter(|s| {
            let mut s = s;
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503")
        })
        .count();
    assert!(
        refused >= 50,
        "only {refused} of 100 connections past the cap got 503"
    );
    let mut last = idle.into_iter().last().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        last.read(&mut [0u8; 16]).unwrap_or(0),
        0,
        "an idle connection stayed open"
    );
    wait_for(BOUND, "the server serves again after the flood", || {
        serve.get("/api/torrents").status == 200
    });

    // The unreachable tracker is named in plain words, without colour codes off a terminal.
    wait_for(BOUND, "the tracker error is logged", || {
        serve
            .stderr_text()
            .contains("cannot connect to http://127.0.0.1:1/a")
    });
    let log = serve.stderr_text();
    assert!(log.to_lowercase().contains("connection refused"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a log that is not a terminal: {log:?}"
    );
}

#[test]
fn a_restarted_server_offers_the_same_torrents() {
    let work = WorkDir::new("http-restart");
    let torrent = work.join("quiet.torrent");
    std::fs::write(
        &torrent,
        zeros("quiet.bin", 1 << 20, 1 << 16, "http://127.0.0.1:1/a"),
    )
    .unwrap();
    let mut first = Serve::start(&work, "serve", &[]);
    let hash = first.add(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_string();
    first.proc_mut().signal(libc::SIGTERM);
    assert!(
        first.proc_mut().wait_exit(BOUND).success(),
        "serve did not stop cleanly"
    );
    let second = Serve::start(&work, "serve", &[]);
    let listed = second.get("/api/torrents").json();
    assert_eq!(listed[0]["info_hash"], hash.as_str(), "{listed}");
    // Removed, it stays gone after the next restart.
    assert_eq!(second.delete(&format!("/api/torrents/{hash}")).status, 204);
    drop(second);
    let third = Serve::start(&work, "serve", &[]);
    assert_eq!(third.get("/api/torrents").body, "[]");
}

#[test]
fn a_server_reachable_from_other_machines_needs_a_token() {
    let work = WorkDir::new("http-token");
    let port = rivulet_tests::ports::free_port(rivulet_tests::ports::LOCALHOST);
    let any = format!("0.0.0.0:{port}");
    let data = work.subdir("data");
    let mut cmd = rivulet_tests::rivulet::command();
    cmd.args(["serve", "--http", &any, "--listen", "127.0.0.1:0", "--data"])
        .arg(&data);
    let (success, _, err) = run(&work, "no-token", cmd);
    assert!(!success, "serve on 0.0.0.0 without a token started");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--token"), "{err}");

    let serve = Serve::start(&work, "serve", &["--token", "s3cret"]);
    assert_eq!(serve.get("/api/torrents").status, 401);
    assert_eq!(serve.get("/api/torrents?token=s3cret").status, 200);
    let authed = rivulet_tests::serve::agent()
        .get(&serve.url("/api/torrents"))
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(authed.status().as_u16(), 200);
    let listed = ok(
        &work,
        "list",
        client(&serve, &["list", "--token", "s3cret"]),
    );
    assert_eq!(listed, "");
    let (success, _, err) = run(&work, "list-no-token", client(&serve, &["list"]));
    assert!(!success && err.contains("401"), "{err}");
}

#[test]
fn two_sessions_on_the_default_peer_port_both_start_and_a_named_port_is_not_replaced() {
    let work = WorkDir::new("port-fallback");
    let first = Serve::start_on_default_port(&work, "first", &[]);
    let second = Serve::start_on_default_port(&work, "second", &[]);
    let said = second.stderr_text();
    assert!(
        said.contains("port 6881 is in use; accepting peers on port"),
        "{said}"
    );
    assert!(!first.stderr_text().contains("in use"));
    let mut cmd = rivulet_tests::rivulet::command();
    cmd.args([
        "serve",
        "--listen",
        "0.0.0.0:6881",
        "--http",
        "127.0.0.1:0",
        "--data",
    ])
    .arg(work.subdir("third"));
    let (success, _, err) = run(&work, "third", cmd);
    assert!(!success, "a second listener on a named, taken port started");
    assert!(err.contains("--listen") && err.contains("6881"), "{err}");
}

#[test]
fn a_second_server_on_the_default_http_address_takes_the_next_port_and_a_named_one_is_kept() {
    let work = WorkDir::new("http-port-fallback");
    // Peers on ports of their own: the default peer port is the test above's.
    let listen = || free_addr(LOCALHOST).to_string();
    let (l1, l2) = (listen(), listen());
    let first = Serve::start_on_default_addresses(&work, "first", &["--listen", &l1]);
    let second = Serve::start_on_default_addresses(&work, "second", &["--listen", &l2]);
    let default: SocketAddr = "127.0.0.1:7881".parse().unwrap();
    assert_eq!(first.http, default);
    assert!(!first.stderr_text().contains("is in use"));
    assert_eq!(second.http, "127.0.0.1:7882".parse().unwrap());
    let said = second.stderr_text();
    assert!(
        said.contains("127.0.0.1:7881 is in use; serving HTTP on 127.0.0.1:7882 instead"),
        "{said}"
    );
    assert_eq!(second.get("/api/torrents").status, 200);
    let mut cmd = rivulet_tests::rivulet::command();
    cmd.args([
        "serve",
        "--http",
        "127.0.0.1:7881",
        "--listen",
        &listen(),
        "--data",
    ])
    .arg(work.subdir("third"));
    let (success, _, err) = run(&work, "third", cmd);
    assert!(!success, "a server on a named, taken address started");
    assert!(err.contains("--http") && err.contains("7881"), "{err}");
}

#[test]
fn a_server_with_a_watch_folder_and_a_mount_shows_every_torrent_in_both() {
    let fixture = Fixture::single();
    let work = WorkDir::new("http-watch-mount");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let watch = work.subdir("watch");
    let mnt = work.subdir("mnt");
    let mut serve = Serve::start(
        &work,
        "serve",
        &[
            "--watch",
            watch.to_str().unwrap(),
            "--mount",
            mnt.to_str().unwrap(),
        ],
    );
    let hash = fixture.info_hash_hex();
    let in_api = |serve: &Serve, hash: &str| {
        serve
            .get("/api/torrents")
            .json()
            .as_array()
            .is_some_and(|all| all.iter().any(|t| t["info_hash"] == hash))
    };
    let in_mount = |name: &str| {
        std::fs::read_dir(&mnt)
            .map(|d| d.flatten().any(|e| e.file_name() == name))
            .unwrap_or(false)
    };

    // Dropped into the watch folder: in the API and in the mount, readable there.
    std::fs::copy(&torrent, watch.join("dropped.torrent")).unwrap();
    wait_for(BOUND, "the dropped torrent listed by the API", || {
        in_api(&serve, &hash)
    });
    wait_for(BOUND, "the dropped torrent shown in the mount", || {
        in_mount(fixture.name())
    });
    rivulet_tests::verify::assert_same_files(fixture, &mnt, "read through serve --mount");

    // Added through the API: shown in the mount too.
    let other = work.join("other.torrent");
    std::fs::write(
        &other,
        zeros("other.bin", 1 << 20, 1 << 16, "http://127.0.0.1:1/a"),
    )
    .unwrap();
    let other_hash = serve.add(&other)["info_hash"].as_str().unwrap().to_string();
    wait_for(BOUND, "the API's torrent shown in the mount", || {
        in_mount("other.bin")
    });

    // Deleted from the watch folder: gone from both; the API's torrent stays.
    std::fs::remove_file(watch.join("dropped.torrent")).unwrap();
    wait_for(BOUND, "the deleted torrent gone from the API", || {
        !in_api(&serve, &hash)
    });
    wait_for(BOUND, "the deleted torrent gone from the mount", || {
        !in_mount(fixture.name())
    });
    assert!(in_api(&serve, &other_hash) && in_mount("other.bin"));

    serve.proc_mut().signal(libc::SIGTERM);
    assert!(
        serve.proc_mut().wait_exit(BOUND).success(),
        "serve did not stop cleanly: {}",
        serve.stderr_text()
    );
    assert!(
        std::fs::read_dir(&mnt).unwrap().next().is_none(),
        "the mount is still there after serve stopped"
    );
}

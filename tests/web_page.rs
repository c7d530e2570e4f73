//! The web page of `rivulet serve` in a real headless browser (Debian's `chromium`): it lists
//! the torrents with their progress and stream links, adding a torrent through its form works
//! (the file chosen and the button clicked through the DevTools protocol; the page's own script
//! uploads it), its Pause and Remove buttons work, and a screenshot is kept in the test's work
//! directory.

use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::chromium::{Browser, dump_dom, screenshot};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::process::wait_for;
use rivulet_tests::serve::Serve;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;

#[test]
fn the_page_lists_torrents_with_progress_and_adds_pauses_and_removes_through_its_buttons() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("web-page");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let serve = Serve::start(&work, "serve", &[]);
    let page = serve.url("/");
    let hash = fixture.info_hash_hex();

    let empty = dump_dom(&work, "dom-empty", &page, 3000);
    assert!(empty.contains("no torrents yet"), "{empty}");

    // Added through the page's form.
    let torrent = swarm.torrent(&work, Announce::Http);
    let mut browser = Browser::open(&work, &page);
    browser.wait_until(
        "document.readyState === 'complete' && !!document.querySelector('#torrents td')",
        "the page loaded",
    );
    browser.choose_file("#file", &torrent);
    browser.eval("document.querySelector('#add button').click()");
    browser.wait_until(
        &format!("!!document.querySelector('tr[data-hash=\"{hash}\"]')"),
        "the page lists the added torrent",
    );
    assert_eq!(
        browser.eval("document.getElementById('error').textContent"),
        ""
    );
    wait_for(Duration::from_secs(60), "the download completes", || {
        serve.torrent(&hash)["progress"].as_f64() == Some(1.0)
    });

    // What a visitor sees: name, progress, state, a stream link per file.
    let dom = dump_dom(&work, "dom-listed", &page, 3000);
    assert!(dom.contains(&format!("data-hash=\"{hash}\"")), "{dom}");
    assert!(dom.contains(fixture.name()), "{dom}");
    assert!(dom.contains("100.0 %") && dom.contains("seeding"), "{dom}");
    for (i, f) in fixture.files.iter().enumerate() {
        let name = f.rel.file_name().unwrap().to_str().unwrap();
        let link = format!("href=\"/stream/{hash}/{i}/{name}\"");
        assert!(dom.contains(&link), "no {link} in {dom}");
    }
    let png = work.join("page.png");
    screenshot(&work, "screenshot", &page, &png);
    let shot = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(shot.starts_with(b"\x89PNG") && shot.len() > 5000);
    eprintln!("screenshot: {}", png.display());

    // Its buttons: Pause, then Remove.
    let row = format!("tr[data-hash=\"{hash}\"]");
    browser.wait_until(
        &format!("document.querySelector('{row} .state').textContent === 'seeding'"),
        "the page shows the torrent seeding",
    );
    browser.eval(&format!(
        "[...document.querySelectorAll('{row} button')].find(b => b.textContent === 'Pause').click()"
    ));
    wait_for(Duration::from_secs(20), "the torrent is paused", || {
        serve.torrent(&hash)["state"] == "paused"
    });
    browser.wait_until(
        &format!("document.querySelector('{row} .state').textContent === 'paused'"),
        "the page shows it paused",
    );
    browser.eval(&format!(
        "[...document.querySelectorAll('{row} button')].find(b => b.textContent === 'Remove').click()"
    ));
    wait_for(Duration::from_secs(20), "the torrent is removed", || {
        serve.get("/api/torrents").body == "[]"
    });
    browser.wait_until(
        "document.querySelector('#torrents').textContent.includes('no torrents yet')",
        "the page shows the list empty",
    );
}

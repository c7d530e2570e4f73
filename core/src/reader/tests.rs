//! Readers against a scripted torrent: reads that time out, hang or answer at once on demand.

use std::collections::VecDeque;

use futures::FutureExt;

use super::*;

const PIECE: u64 = 256 << 10;
const MIB: u64 = 1 << 20;

/// Two files: `lead` (100 bytes) and `big` (40 MiB), in 256 KiB pieces.
fn meta() -> Arc<Metainfo> {
    let total = 100 + 40 * MIB;
    let pieces = total.div_ceil(PIECE) as usize;
    let s = |x: &str| format!("{}:{x}", x.len());
    let info = format!(
        "d5:filesld6:lengthi100e4:pathl{}eed6:lengthi{}e4:pathl{}eee4:name{}\
         12:piece lengthi{PIECE}e6:pieces{}:{}e",
        s("lead"),
        40 * MIB,
        s("big"),
        s("t"),
        pieces * 20,
        "x".repeat(pieces * 20)
    );
    let bytes = format!("d8:announce{}4:info{info}e", s("http://t/a"));
    Arc::new(Metainfo::from_bytes(bytes.as_bytes()).unwrap())
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Serve,
    Hang,
    TimeOut,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Read(Range<u64>),
    Prefetch(u64, Range<u64>),
    Forget(u64),
}

/// Answers reads as scripted (then serves), with bytes equal to their offset mod 251.
#[derive(Default)]
struct Scripted {
    script: Mutex<VecDeque<Answer>>,
    calls: Mutex<Vec<Call>>,
    budget: Option<u64>,
}

impl Scripted {
    fn with(answers: &[Answer]) -> Self {
        Scripted {
            script: Mutex::new(answers.iter().copied().collect()),
            ..Scripted::default()
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl TorrentBytes for Scripted {
    fn read(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static + use<> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Read(offset..offset + len));
        let answer = self.script.lock().unwrap().pop_front();
        async move {
            match answer.unwrap_or(Answer::Serve) {
                Answer::Serve => Ok((offset..offset + len).map(|i| (i % 251) as u8).collect()),
                Answer::Hang => std::future::pending().await,
                Answer::TimeOut => Err(ReadError::Timeout { offset, len }),
            }
        }
    }

    fn prefetch(&self, reader: u64, range: Range<u64>, _urgency: Duration) {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Prefetch(reader, range));
    }

    fn forget_reader(&self, reader: u64) {
        self.calls.lock().unwrap().push(Call::Forget(reader));
    }

    fn readahead_budget(&self) -> u64 {
        self.budget.unwrap_or(u64::MAX)
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    crate::rt::block_on(f)
}

#[test]
fn reads_map_onto_the_file_bytes_and_stop_at_its_end() {
    let readers = Readers::new(Scripted::default(), meta());
    let lead = readers.open(0).unwrap();
    assert_eq!(lead.len(), 100);
    let got = block_on(lead.read_at(90, 64)).unwrap();
    assert_eq!(got, (90..100).map(|i| i as u8).collect::<Vec<_>>());
    assert!(block_on(lead.read_at(100, 64)).unwrap().is_empty());
    let big = readers.open(1).unwrap();
    let got = block_on(big.read_at(0, 4)).unwrap();
    assert_eq!(got, (100..104).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let reads: Vec<Call> = readers
        .torrent()
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Read(_)))
        .collect();
    assert_eq!(reads, [Call::Read(90..100), Call::Read(100..104)]);
    assert!(matches!(readers.open(2), Err(ReaderError::NoSuchFile(2))));
}

#[test]
fn several_reads_of_one_reader_are_in_flight_at_once() {
    let readers = Readers::new(Scripted::with(&[Answer::Hang]), meta());
    let reader = readers.open(1).unwrap();
    let mut first = Box::pin(reader.read_at(0, 128 << 10));
    let second = reader.read_at(128 << 10, 128 << 10);
    // The second answers while the first still waits: neither holds the reader.
    assert_eq!(block_on(second).unwrap().len(), 128 << 10);
    assert!(first.as_mut().now_or_never().is_none());
    let windows: Vec<Range<u64>> = readers
        .torrent()
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Prefetch(_, r) => Some(r),
            _ => None,
        })
        .collect();
    // Both reads were seen, in order: the run continued and its window doubled.
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[1].end - windows[1].start, 2 * MIB);
}

#[test]
fn a_read_of_bytes_that_just_timed_out_does_not_wait_again() {
    let readers = Readers::new(
        Scripted::with(&[Answer::TimeOut, Answer::Hang, Answer::Serve, Answer::Hang]),
        meta(),
    );
    let reader = readers.open(1).unwrap();
    let e = block_on(reader.read_at(0, 128 << 10)).unwrap_err();
    assert!(
        matches!(e, ReaderError::Read(ReadError::Timeout { .. })),
        "{e}"
    );
    // The kernel asks again for the first page: the bytes have not come, so it fails at once
    // (the scripted torrent would never answer it).
    let retry = reader.read_at(0, 4096);
    let e = block_on(crate::rt::timeout(Duration::from_secs(5), retry))
        .expect("the retry did not wait")
        .unwrap_err();
    assert!(
        matches!(e, ReaderError::Read(ReadError::Timeout { .. })),
        "{e}"
    );
    // Bytes that did arrive are served.
    assert_eq!(block_on(reader.read_at(0, 4096)).unwrap().len(), 4096);
    // Another reader of the same bytes waits on its own.
    let other = readers.open(1).unwrap();
    let read = other.read_at(0, 4096);
    let waited = block_on(crate::rt::timeout(Duration::from_millis(50), read));
    assert!(waited.is_err(), "the other reader did not wait: {waited:?}");
}

#[test]
fn reader_ids_are_unique_whoever_opens_them() {
    let meta = meta();
    let a = Readers::new(Scripted::default(), meta.clone());
    let b = Readers::new(Scripted::default(), meta);
    let mut ids: Vec<u64> = (0..4)
        .flat_map(|_| [a.open(1).unwrap().id(), b.open(1).unwrap().id()])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8);
}

#[test]
fn dropping_a_reader_withdraws_its_readahead() {
    let readers = Readers::new(Scripted::default(), meta());
    let reader = readers.open(1).unwrap();
    let id = reader.id();
    block_on(reader.read_at(0, 4096)).unwrap();
    drop(reader);
    let calls = readers.torrent().calls();
    assert!(
        matches!(calls[0], Call::Prefetch(r, _) if r == id),
        "{calls:?}"
    );
    assert_eq!(calls.last(), Some(&Call::Forget(id)));
}

#[test]
fn the_windows_of_all_readers_fit_the_readahead_budget() {
    let torrent = Scripted {
        budget: Some(8 * PIECE),
        ..Scripted::default()
    };
    let readers = Readers::new(torrent, meta());
    let all: Vec<Reader<Scripted>> = (0..4).map(|_| readers.open(1).unwrap()).collect();
    // Each streams from its own place; windows double up to 32 MiB unless the budget says no.
    for round in 0..8u64 {
        for (i, r) in all.iter().enumerate() {
            let at = i as u64 * 8 * MIB + round * PIECE;
            block_on(r.read_at(at, PIECE)).unwrap();
        }
    }
    let mut windows: std::collections::HashMap<u64, Range<u64>> = Default::default();
    for c in readers.torrent().calls() {
        match c {
            Call::Prefetch(r, w) => {
                windows.insert(r, w);
            }
            Call::Forget(r) => {
                windows.remove(&r);
            }
            Call::Read(_) => {}
        }
        let pieces: u64 = windows
            .values()
            .map(|w| w.end.div_ceil(PIECE) - w.start / PIECE)
            .sum();
        assert!(pieces <= 8, "windows span {pieces} pieces: {windows:?}");
    }
    assert_eq!(windows.len(), 4, "each has its fair share: {windows:?}");
}

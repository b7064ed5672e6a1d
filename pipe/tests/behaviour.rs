//! Timeouts, limits, FIFO lifecycle and every bad input, within one process.

mod common;
use common::TempPath;
use ipcraft_pipe::{
    Error, Fifo, FifoOptions, FrameError, FrameReader, FrameWriter, PIPE_BUF, PipeOptions,
    SpliceFlags, max_capacity, pipe, splice, tee,
};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(50);

/// Fill a pipe until a non-blocking write refuses more.
fn fill(w: &ipcraft_pipe::PipeWriter) -> usize {
    let chunk = [0u8; 4096];
    let mut total = 0;
    loop {
        match w.try_write(&chunk) {
            Ok(n) => total += n,
            Err(Error::WouldBlock { .. }) => return total,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn read_timeout_returns_after_the_timeout_not_before() {
    let (r, _w) = pipe().unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 8];
    assert!(matches!(
        r.read_with_timeout(&mut buf, SHORT),
        Err(Error::TimedOut { .. })
    ));
    assert!(start.elapsed() >= SHORT);

    // Through io::Read with a timeout set.
    let (mut r, _w) = pipe().unwrap();
    r.set_read_timeout(Some(SHORT)).unwrap();
    let start = Instant::now();
    assert_eq!(r.read(&mut buf).unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() >= SHORT);
}

#[test]
fn write_timeout_on_a_full_pipe_returns_after_the_timeout() {
    let (_r, mut w) = pipe().unwrap();
    let filled = fill(&w);
    assert!(filled >= 4096);
    let start = Instant::now();
    assert!(matches!(
        w.write_with_timeout(b"x", SHORT),
        Err(Error::TimedOut { .. })
    ));
    assert!(start.elapsed() >= SHORT);
    w.set_write_timeout(Some(SHORT)).unwrap();
    assert_eq!(w.write(b"x").unwrap_err().kind(), ErrorKind::TimedOut);
}

#[test]
fn try_forms_report_would_block_and_lose_nothing() {
    let (r, w) = pipe().unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(
        r.try_read(&mut buf),
        Err(Error::WouldBlock { .. })
    ));
    w.try_write(b"abc").unwrap();
    assert_eq!(r.try_read(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"abc");
    let filled = fill(&w);
    assert!(matches!(
        w.try_write_atomic(b"x"),
        Err(Error::WouldBlock { .. })
    ));
    // Everything accepted is there to read.
    let mut total = 0;
    let mut big = vec![0u8; 1 << 16];
    while let Ok(n) = r.try_read(&mut big) {
        total += n;
    }
    assert_eq!(total, filled);
}

#[test]
fn nonblocking_pipes_say_would_block() {
    let (mut r, mut w) = PipeOptions::new().nonblocking(true).create().unwrap();
    assert!(r.is_nonblocking() && w.is_nonblocking());
    let mut buf = [0u8; 4];
    assert_eq!(r.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    w.write_all(b"ok").unwrap();
    assert_eq!(r.read(&mut buf).unwrap(), 2);
    fill(&w);
    assert!(matches!(
        w.write_atomic(b"x"),
        Err(Error::WouldBlock { .. })
    ));
    r.set_nonblocking(false).unwrap();
    assert!(!r.is_nonblocking());
}

#[test]
fn writing_to_a_closed_reader_is_broken_pipe() {
    let (r, mut w) = pipe().unwrap();
    drop(r);
    assert!(matches!(w.write_atomic(b"x"), Err(Error::BrokenPipe)));
    assert!(matches!(w.try_write(b"x"), Err(Error::BrokenPipe)));
    assert_eq!(w.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
    let mut fw = FrameWriter::new(w);
    match fw.send(b"frame") {
        Err(FrameError::Io(e)) => assert_eq!(e.kind(), ErrorKind::BrokenPipe),
        other => panic!("{other:?}"),
    }
}

#[test]
fn atomic_write_above_pipe_buf_is_refused_whole() {
    let (r, w) = pipe().unwrap();
    let e = w.write_atomic(&vec![1u8; PIPE_BUF + 1]).unwrap_err();
    assert!(
        matches!(e, Error::AtomicWriteTooLarge { len, max } if len == PIPE_BUF + 1 && max == PIPE_BUF)
    );
    assert!(e.to_string().contains("PIPE_BUF (4096 bytes)"));
    assert!(
        matches!(r.try_read(&mut [0u8; 8]), Err(Error::WouldBlock { .. })),
        "nothing written"
    );
}

#[test]
fn capacity_can_be_read_and_set_within_the_limit() {
    let (r, w) = pipe().unwrap();
    assert_eq!(w.capacity().unwrap(), 65536);
    let limit = max_capacity().unwrap();
    let want = (1 << 20).min(limit);
    let got = w.set_capacity(want).unwrap();
    assert!(got >= want);
    assert_eq!(r.capacity().unwrap(), got, "both ends see the same pipe");
}

#[test]
fn capacity_above_the_system_limit_names_the_limit() {
    let (_r, w) = pipe().unwrap();
    let limit = max_capacity().unwrap();
    let e = w.set_capacity(limit + 1).unwrap_err();
    assert!(
        matches!(e, Error::CapacityAboveLimit { requested, limit: l } if requested == limit + 1 && l == limit)
    );
    assert!(e.to_string().contains("/proc/sys/fs/pipe-max-size"));
    assert!(matches!(
        w.set_capacity(usize::MAX),
        Err(Error::CapacityAboveLimit { .. })
    ));
    assert_eq!(w.capacity().unwrap(), 65536, "unchanged");
}

#[test]
fn packet_mode_keeps_message_boundaries() {
    let (mut r, mut w) = PipeOptions::new().packet_mode(true).create().unwrap();
    w.write_all(b"first").unwrap();
    w.write_all(b"second!").unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(r.read(&mut buf).unwrap(), 5);
    assert_eq!(r.read(&mut buf).unwrap(), 7);
    assert_eq!(&buf[..7], b"second!");
}

#[test]
fn oversized_frame_is_refused_before_anything_is_written() {
    let (r, w) = pipe().unwrap();
    let mut tx = FrameWriter::with_max_frame(w, 16);
    assert!(matches!(
        tx.send(&[0u8; 17]),
        Err(FrameError::Oversized { len: 17, max: 16 })
    ));
    assert!(
        matches!(r.try_read(&mut [0u8; 8]), Err(Error::WouldBlock { .. })),
        "nothing written"
    );
    tx.send(&[0u8; 16]).unwrap();
}

#[test]
fn frame_length_over_the_maximum_in_the_stream_is_refused() {
    let (r, mut w) = pipe().unwrap();
    w.write_all(&1000u32.to_le_bytes()).unwrap();
    w.write_all(&[0u8; 1000]).unwrap();
    let mut rx = FrameReader::with_max_frame(r, 100);
    match rx.next_frame() {
        Err(FrameError::IncomingOversized {
            len: 1000,
            max: 100,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn framed_read_resumes_after_a_timeout_mid_frame() {
    let (r, mut w) = pipe().unwrap();
    r.set_read_timeout(Some(SHORT)).unwrap();
    let mut rx = FrameReader::new(r);
    w.write_all(&6u32.to_le_bytes()).unwrap();
    w.write_all(b"hal").unwrap();
    match rx.next_frame() {
        Err(FrameError::Io(e)) => assert_eq!(e.kind(), ErrorKind::TimedOut),
        other => panic!("{other:?}"),
    }
    w.write_all(b"f!!").unwrap();
    assert_eq!(rx.next_frame().unwrap(), Some(&b"half!!"[..]));
}

#[test]
fn fifo_mode_is_exact_whatever_the_umask() {
    let p = TempPath::new("mode");
    let fifo = Fifo::create(&p.0).unwrap();
    let meta = std::fs::metadata(fifo.path()).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    drop(fifo);
    assert!(!p.0.exists(), "the creator removes its FIFO");

    // 0o666 is more than mkfifo gives under the usual umask 022.
    let fifo = FifoOptions::new().mode(0o666).create(&p.0).unwrap();
    let mode = std::fs::metadata(fifo.path()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o666);
    assert!(matches!(
        FifoOptions::new().mode(0o10000).create(&p.0),
        Err(Error::InvalidMode { mode: 0o10000 })
    ));
}

#[test]
fn stale_fifo_is_already_exists_and_can_be_replaced_explicitly() {
    let p = TempPath::new("stale");
    let kept = Fifo::create(&p.0).unwrap().persist();
    assert_eq!(kept, p.0);
    assert!(p.0.exists(), "persisted");
    match Fifo::create(&p.0) {
        Err(e @ Error::AlreadyExists { .. }) => {
            assert!(e.to_string().contains("create_or_replace"));
            assert_eq!(std::io::Error::from(e).kind(), ErrorKind::AlreadyExists);
        }
        other => panic!("{other:?}"),
    }
    let fifo = Fifo::create_or_replace(&p.0).unwrap();
    assert!(
        std::fs::metadata(fifo.path())
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn a_regular_file_is_never_replaced_or_opened_as_a_fifo() {
    let p = TempPath::new("regular");
    std::fs::write(&p.0, b"precious").unwrap();
    assert!(matches!(
        Fifo::create_or_replace(&p.0),
        Err(Error::NotAFifo { .. })
    ));
    assert!(matches!(
        Fifo::open_reader(&p.0, Some(SHORT)),
        Err(Error::NotAFifo { .. })
    ));
    assert!(matches!(
        Fifo::open_writer(&p.0, Some(SHORT)),
        Err(Error::NotAFifo { .. })
    ));
    assert_eq!(std::fs::read(&p.0).unwrap(), b"precious");
}

#[test]
fn drop_leaves_alone_whatever_replaced_the_fifo() {
    let p = TempPath::new("replaced");
    let fifo = Fifo::create(&p.0).unwrap();
    std::fs::remove_file(&p.0).unwrap();
    std::fs::write(&p.0, b"someone else's").unwrap();
    drop(fifo);
    assert_eq!(std::fs::read(&p.0).unwrap(), b"someone else's");
}

#[test]
fn opening_with_no_peer_times_out_with_no_peer() {
    let p = TempPath::new("nopeer");
    let fifo = Fifo::create(&p.0).unwrap();
    let start = Instant::now();
    match Fifo::open_reader(fifo.path(), Some(SHORT)) {
        Err(Error::NoPeer {
            missing: "writer",
            waited,
            ..
        }) => assert!(waited >= SHORT),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() >= SHORT);
    let start = Instant::now();
    match Fifo::open_writer(fifo.path(), Some(SHORT)) {
        Err(
            e @ Error::NoPeer {
                missing: "reader", ..
            },
        ) => {
            assert_eq!(e.kind(), ErrorKind::TimedOut);
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() >= SHORT);
}

#[test]
fn fifo_open_in_threads_meets_in_the_middle() {
    let p = TempPath::new("meet");
    let fifo = Fifo::create(&p.0).unwrap();
    let path = fifo.path().to_owned();
    let writer = std::thread::spawn(move || {
        let mut w = Fifo::open_writer(&path, Some(Duration::from_secs(20))).unwrap();
        w.write_all(b"met").unwrap();
    });
    let mut r = Fifo::open_reader(fifo.path(), Some(Duration::from_secs(20))).unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!(s, "met");
    writer.join().unwrap();
}

#[test]
fn bad_paths_get_typed_errors() {
    let long_component = std::env::temp_dir().join("x".repeat(300));
    match Fifo::create(&long_component) {
        Err(
            e @ Error::PathTooLong {
                len: 300, max: 255, ..
            },
        ) => {
            assert!(e.to_string().contains("at most 255 bytes"));
        }
        other => panic!("{other:?}"),
    }
    let long_path = PathBuf::from(format!("/tmp{}", "/abcdefgh".repeat(500)));
    assert!(matches!(
        Fifo::create(&long_path),
        Err(Error::PathTooLong { max: 4095, .. })
    ));
    assert!(matches!(Fifo::create(""), Err(Error::InvalidPath { .. })));
    let missing_dir =
        std::env::temp_dir().join(format!("ipcraft-no-such-dir-{}/f", std::process::id()));
    match Fifo::create(&missing_dir) {
        Err(Error::Sys(e)) => {
            assert_eq!(e.errno(), nix::errno::Errno::ENOENT);
            assert!(e.to_string().contains("mkfifo"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tee_copies_and_splice_moves() {
    let (a_r, mut a_w) = pipe().unwrap();
    let (mut b_r, b_w) = pipe().unwrap();
    a_w.write_all(b"payload").unwrap();
    assert_eq!(tee(&a_r, &b_w, 64, SpliceFlags::NONE).unwrap(), 7);
    let p = TempPath::new("splice");
    let file = std::fs::File::create(&p.0).unwrap();
    assert_eq!(splice(&a_r, &file, 64, SpliceFlags::NONE).unwrap(), 7);
    drop(file);
    assert_eq!(std::fs::read(&p.0).unwrap(), b"payload");
    let mut copy = [0u8; 7];
    b_r.read_exact(&mut copy).unwrap();
    assert_eq!(&copy, b"payload");
    assert!(matches!(
        splice(&a_r, &b_w, 64, SpliceFlags::NONBLOCK),
        Err(Error::WouldBlock { .. })
    ));
}

#[test]
fn handles_convert_and_clone() {
    let (r, w) = pipe().unwrap();
    let w2 = w.try_clone().unwrap();
    let std_w: std::io::PipeWriter = w2.into();
    let mut back = ipcraft_pipe::PipeWriter::from(std_w);
    back.write_all(b"x").unwrap();
    let owned: std::os::fd::OwnedFd = r.into();
    let r = ipcraft_pipe::PipeReader::try_from(owned).unwrap();
    let mut b = [0u8; 1];
    (&r).read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    assert!(format!("{r:?}").starts_with("PipeReader { fd: "));
}

#[test]
fn settings_change_through_a_shared_reference_as_in_std() {
    let (r, w) = pipe().unwrap();
    let (r, w) = (&r, &w);
    r.set_read_timeout(Some(SHORT)).unwrap();
    assert_eq!(r.read_timeout(), Some(SHORT));
    let mut reader = r;
    assert_eq!(
        reader.read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::TimedOut
    );
    w.set_nonblocking(true).unwrap();
    assert!(w.is_nonblocking());
    w.set_write_timeout(Some(SHORT)).unwrap();
    assert_eq!(w.write_timeout(), Some(SHORT));
}

#[test]
fn adopting_a_descriptor_checks_that_it_is_a_pipe() {
    use ipcraft_pipe::{PipeReader, PipeWriter};
    use std::os::fd::{AsRawFd, OwnedFd};
    let (r, w) = pipe().unwrap();
    let r = PipeReader::try_from(OwnedFd::from(r)).unwrap();
    let w = PipeWriter::try_from(OwnedFd::from(w)).unwrap();
    (&w).write_all(b"x").unwrap();
    assert_eq!((&r).read(&mut [0u8; 1]).unwrap(), 1);
    // A regular file is refused, and handed back open.
    let file: OwnedFd = std::fs::File::open("/proc/self/stat").unwrap().into();
    let raw = file.as_raw_fd();
    match PipeReader::try_from(file) {
        Err(Error::NotAPipe { fd }) => assert_eq!(fd.as_raw_fd(), raw),
        other => panic!("{other:?}"),
    }
}

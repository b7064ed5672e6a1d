//! The trait set of every public handle type, checked at compile time: this
//! file stops compiling if a handle loses a trait (the API family's rules, in
//! `CONTRIBUTING.md`). The one runtime test shows the error rules at work.
#![cfg(all(
    feature = "pipe",
    feature = "socket",
    feature = "mqueue",
    feature = "shm"
))]
#![allow(dead_code)]

use std::error::Error as StdError;
use std::fmt::Debug;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// A descriptor handle: borrowed as `AsFd`/`AsRawFd`, given up with `From<X> for OwnedFd`,
/// adopted (checked) with `TryFrom<OwnedFd>`, debuggable, and usable from any thread.
fn fd_handle<T>()
where
    T: AsFd + AsRawFd + Debug + Send + Sync + Into<OwnedFd> + TryFrom<OwnedFd>,
    <T as TryFrom<OwnedFd>>::Error: StdError + Send + Sync + 'static,
{
}

/// An error type: converts into `io::Error` and, through `?`, into a boxed error that crosses
/// threads.
fn error_type<E: StdError + Debug + Send + Sync + 'static + Into<io::Error>>() {}

/// What every handle is, even those that are not plain descriptors.
fn handle<T: Debug + Send>() {}

#[test]
fn every_handle_has_the_trait_set() {
    use ipcraft::{mqueue, pipe, shm, socket};
    fd_handle::<pipe::PipeReader>();
    fd_handle::<pipe::PipeWriter>();
    fd_handle::<socket::UnixListener>();
    fd_handle::<socket::UnixStream>();
    fd_handle::<socket::UnixDatagram>();
    fd_handle::<socket::SeqpacketListener>();
    fd_handle::<socket::SeqpacketConn>();
    fd_handle::<socket::TcpListener>();
    fd_handle::<socket::TcpStream>();
    fd_handle::<mqueue::MessageQueue>();
    fd_handle::<shm::Segment>();
    fd_handle::<shm::ByteLocks>();
    handle::<pipe::Fifo>();

    // Std parity on the socket types: try_clone everywhere, addresses and shutdown.
    fn cloneable<T>(_: fn(&T) -> socket::Result<T>) {}
    cloneable(socket::UnixListener::try_clone);
    cloneable(socket::UnixStream::try_clone);
    cloneable(socket::UnixDatagram::try_clone);
    cloneable(socket::SeqpacketListener::try_clone);
    cloneable(socket::SeqpacketConn::try_clone);
    cloneable(socket::TcpListener::try_clone);
    cloneable(socket::TcpStream::try_clone);
    fn addressed<T>(_: fn(&T) -> socket::Result<socket::SocketAddr>) {}
    addressed(socket::UnixDatagram::local_addr);
    addressed(socket::UnixDatagram::peer_addr);
    addressed(socket::SeqpacketConn::local_addr);
    addressed(socket::SeqpacketConn::peer_addr);
    addressed(socket::SeqpacketListener::local_addr);
    fn shut<T>(_: fn(&T, std::net::Shutdown) -> socket::Result<()>) {}
    shut(socket::UnixDatagram::shutdown);
    shut(socket::SeqpacketConn::shutdown);
    shut(socket::UnixStream::shutdown);
    // Settings through &self, as std's.
    fn setting<T, E: StdError>(_: fn(&T, bool) -> Result<(), E>) {}
    setting(pipe::PipeReader::set_nonblocking);
    setting(pipe::PipeWriter::set_nonblocking);
    setting(socket::UnixListener::set_nonblocking);
    setting(socket::UnixStream::set_nonblocking);
    setting(socket::UnixDatagram::set_nonblocking);
    setting(socket::SeqpacketListener::set_nonblocking);
    setting(socket::SeqpacketConn::set_nonblocking);
    setting(socket::TcpListener::set_nonblocking);
    setting(socket::TcpStream::set_nonblocking);
}

#[test]
#[cfg(all(feature = "shm", feature = "sync"))]
fn channel_ends_have_theirs() {
    use ipcraft::channel::{ChannelError, Receiver, Sender};
    fn adoptable<T: TryFrom<OwnedFd, Error = ChannelError> + Debug + Send>() {}
    adoptable::<Sender>();
    adoptable::<Receiver>();
    error_type::<ChannelError>();
}

/// Typed ends: adopted from a descriptor (the type checked) like untyped ones, `Debug` and
/// `Send` whatever the message type is (here one that is neither `Send` nor `Sync`: the ends
/// hold no `T`).
#[test]
#[cfg(all(feature = "shm", feature = "sync"))]
fn typed_channel_ends_have_theirs() {
    use ipcraft::typed::channel::{Receiver, Sender};
    use ipcraft::typed::{Message, TypedError};
    struct NotSend(std::cell::Cell<u64>, std::rc::Rc<()>);
    impl Message for NotSend {
        const NAME: &'static str = "NotSend";
    }
    fn adoptable<T: TryFrom<OwnedFd, Error = TypedError> + Debug + Send>() {}
    adoptable::<Sender<u64>>();
    adoptable::<Receiver<u64>>();
    handle::<Sender<NotSend, ipcraft::typed::Plain>>();
    handle::<Receiver<NotSend, ipcraft::typed::Plain>>();
    error_type::<TypedError>();
}

#[test]
fn every_error_converts_into_io_and_boxed_errors() {
    error_type::<ipcraft::ipcraft_core::SysError>();
    error_type::<ipcraft::ipcraft_core::FrameError>();
    error_type::<ipcraft::ipcraft_core::NameError>();
    error_type::<ipcraft::pipe::Error>();
    error_type::<ipcraft::socket::Error>();
    error_type::<ipcraft::mqueue::Error>();
    error_type::<ipcraft::shm::Error>();
    error_type::<ipcraft::ring::RingError>();

    // And `?` works into both.
    fn boxed() -> Result<(), Box<dyn StdError + Send + Sync>> {
        ipcraft::pipe::PipeReader::try_from(OwnedFd::from(std::fs::File::open(
            "/proc/self/stat",
        )?))?;
        Ok(())
    }
    fn io() -> io::Result<()> {
        Err(ipcraft::ring::RingError::Full)?;
        Ok(())
    }
    assert!(boxed().unwrap_err().to_string().contains("not a pipe"));
    assert_eq!(io().unwrap_err().kind(), io::ErrorKind::WouldBlock);
}

/// `sync`: its objects live in a segment (they are not descriptors): handles are `Debug`,
/// `Send` and `Sync`; guards are neither `Send` nor `Sync` (their compile_fail doctests prove
/// that side); errors convert as every crate's do, a `LockError` through `sync::Error`.
#[test]
#[cfg(feature = "sync")]
fn sync_handles_and_errors_have_theirs() {
    use ipcraft::sync::{Condvar, Error, LockError, Mutex, Semaphore};
    fn shared<T: Debug + Send + Sync>() {}
    shared::<Mutex<u64>>();
    shared::<Mutex<u64, &ipcraft::shm::Segment>>();
    shared::<Condvar>();
    shared::<Semaphore<'static>>();
    error_type::<Error>();
    error_type::<ipcraft::ipcraft_core::TrustError>();
    fn owned<'a>(e: LockError<'a, u64>) -> Error {
        e.into()
    }
    let _ = owned;
}

//! Every benchmark case, in the order the table shows them: the physical limits first, then
//! one mechanism after another, each as the raw baseline and as ipcraft.
//!
//! To add a mechanism, write a module with its [`Case`]s and list them in [`all`].

use crate::harness::{Case, Impl};
use async_io::Mech as AsyncMech;
use ipcraft_sync::MutexKind::{Futex, Pthread};
use sync::Row;

pub mod async_io;
pub mod async_mqueue;
pub mod channel;
pub mod limit;
pub mod mqueue;
pub mod pipe;
pub mod sem;
pub mod shm;
pub mod socket;
pub mod sync;

/// All cases.
pub fn all() -> Vec<Box<dyn Case>> {
    vec![
        Box::new(limit::Cacheline { yields: false }),
        Box::new(limit::Cacheline { yields: true }),
        Box::new(limit::Memcpy),
        Box::new(pipe::PipeCase::new(false, Impl::Raw)),
        Box::new(pipe::PipeCase::new(false, Impl::Ipcraft)),
        Box::new(pipe::PipeCase::new(true, Impl::Raw)),
        Box::new(pipe::PipeCase::new(true, Impl::Ipcraft)),
        Box::new(mqueue::MqueueCase::new(Impl::Raw)),
        Box::new(mqueue::MqueueCase::new(Impl::Ipcraft)),
        Box::new(socket::SocketCase::new(socket::Kind::UnixStream, Impl::Raw)),
        Box::new(socket::SocketCase::new(
            socket::Kind::UnixStream,
            Impl::Ipcraft,
        )),
        Box::new(socket::SocketCase::new(socket::Kind::UnixDgram, Impl::Raw)),
        Box::new(socket::SocketCase::new(
            socket::Kind::UnixDgram,
            Impl::Ipcraft,
        )),
        Box::new(socket::SocketCase::new(
            socket::Kind::UnixSeqpacket,
            Impl::Raw,
        )),
        Box::new(socket::SocketCase::new(
            socket::Kind::UnixSeqpacket,
            Impl::Ipcraft,
        )),
        Box::new(socket::SocketCase::new(socket::Kind::Tcp, Impl::Raw)),
        Box::new(socket::SocketCase::new(socket::Kind::Tcp, Impl::Ipcraft)),
        Box::new(shm::ShmCase::new(false, Impl::Raw)),
        Box::new(shm::ShmCase::new(false, Impl::Ipcraft)),
        Box::new(shm::ShmCase::new(true, Impl::Raw)),
        Box::new(shm::ShmCase::new(true, Impl::Ipcraft)),
        Box::new(sync::SyncCase::new(Row::Uncontended, Pthread, Impl::Raw)),
        Box::new(sync::SyncCase::new(
            Row::Uncontended,
            Pthread,
            Impl::Ipcraft,
        )),
        Box::new(sync::SyncCase::new(Row::Uncontended, Futex, Impl::Raw)),
        Box::new(sync::SyncCase::new(Row::Uncontended, Futex, Impl::Ipcraft)),
        Box::new(sync::SyncCase::new(Row::Handoff, Pthread, Impl::Raw)),
        Box::new(sync::SyncCase::new(Row::Handoff, Pthread, Impl::Ipcraft)),
        Box::new(sync::SyncCase::new(Row::Handoff, Futex, Impl::Raw)),
        Box::new(sync::SyncCase::new(Row::Handoff, Futex, Impl::Ipcraft)),
        Box::new(sync::SyncCase::new(Row::PingPong, Pthread, Impl::Raw)),
        Box::new(sync::SyncCase::new(Row::PingPong, Pthread, Impl::Ipcraft)),
        Box::new(sem::SemCase::new(false, Impl::Raw)),
        Box::new(sem::SemCase::new(false, Impl::Ipcraft)),
        Box::new(sem::SemCase::new(true, Impl::Raw)),
        Box::new(sem::SemCase::new(true, Impl::Ipcraft)),
        Box::new(channel::ChannelCase { sleep: false }),
        Box::new(channel::ChannelCase { sleep: true }),
        Box::new(async_io::AsyncCase::new(AsyncMech::Pipe, Impl::Raw)),
        Box::new(async_io::AsyncCase::new(AsyncMech::Pipe, Impl::Ipcraft)),
        Box::new(async_mqueue::AsyncMqueueCase::new(Impl::Raw)),
        Box::new(async_mqueue::AsyncMqueueCase::new(Impl::Ipcraft)),
        Box::new(async_io::AsyncCase::new(AsyncMech::UnixStream, Impl::Raw)),
        Box::new(async_io::AsyncCase::new(
            AsyncMech::UnixStream,
            Impl::Ipcraft,
        )),
        Box::new(async_io::AsyncCase::new(AsyncMech::UnixDgram, Impl::Raw)),
        Box::new(async_io::AsyncCase::new(
            AsyncMech::UnixDgram,
            Impl::Ipcraft,
        )),
        Box::new(async_io::AsyncCase::new(
            AsyncMech::UnixSeqpacket,
            Impl::Raw,
        )),
        Box::new(async_io::AsyncCase::new(
            AsyncMech::UnixSeqpacket,
            Impl::Ipcraft,
        )),
        Box::new(async_io::AsyncCase::new(
            AsyncMech::Channel { sleep: false },
            Impl::Ipcraft,
        )),
        Box::new(async_io::AsyncCase::new(
            AsyncMech::Channel { sleep: true },
            Impl::Ipcraft,
        )),
    ]
}

/// The case a child was started for.
pub fn by_id(id: &str) -> Option<Box<dyn Case>> {
    all().into_iter().find(|c| c.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_found() {
        let ids: Vec<String> = all().iter().map(|c| c.id()).collect();
        for id in &ids {
            assert_eq!(ids.iter().filter(|i| *i == id).count(), 1, "{id}");
            assert_eq!(by_id(id).map(|c| c.id()).as_deref(), Some(id.as_str()));
        }
        assert!(by_id("nope/raw").is_none());
    }
}

//! Borrowed halves of an async stream ([`UnixStream::split`], [`TcpStream::split`]): one
//! task reads while another writes, each through `AsyncRead`/`AsyncWrite`.
//!
//! Why halves rather than `AsyncRead for &UnixStream`: the reactor keeps one waker per
//! direction for the poll methods, so two tasks polling reads on one stream would steal each
//! other's wake-ups (one would hang). A `&mut` borrow split into one reader and one writer
//! rules that out at compile time, as tokio's own `split` does. The `&self` async methods
//! (`send`, `recv`, ...) have no such limit: they queue every waiting task.

use super::{TcpStream, UnixStream, poll_read_stream, poll_write_stream};
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The reading half of a stream, borrowed from it by `split`: `AsyncRead`, cancel-safe as
/// the stream's `recv`.
#[derive(Debug)]
pub struct ReadHalf<'a, S>(&'a S);

/// The writing half of a stream, borrowed from it by `split`: `AsyncWrite`; its
/// `poll_shutdown` shuts down writing (the peer sees end of stream).
#[derive(Debug)]
pub struct WriteHalf<'a, S>(&'a S);

macro_rules! halves {
    ($stream:ident) => {
        impl $stream {
            /// Split into a reading and a writing half, borrowed from this stream, for a
            /// task that reads while another writes (or `tokio::io::copy` both ways).
            ///
            /// ```no_run
            /// # async fn f(mut s: ipcraft_socket::tokio::UnixStream) -> std::io::Result<()> {
            /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
            /// let (mut r, mut w) = s.split();
            /// w.write_all(b"ping").await?;
            /// let mut buf = [0u8; 4];
            /// r.read_exact(&mut buf).await?;
            /// # Ok(()) }
            /// ```
            pub fn split(&mut self) -> (ReadHalf<'_, $stream>, WriteHalf<'_, $stream>) {
                (ReadHalf(self), WriteHalf(self))
            }
        }

        impl AsyncRead for ReadHalf<'_, $stream> {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                poll_read_stream(&self.0.io, cx, buf, |s, b| s.try_recv(b))
            }
        }

        impl AsyncWrite for WriteHalf<'_, $stream> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                poll_write_stream(&self.0.io, cx, buf, |s, b| s.try_send(b))
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(
                    self.0
                        .shutdown(std::net::Shutdown::Write)
                        .map_err(io::Error::from),
                )
            }
        }
    };
}

halves!(UnixStream);
halves!(TcpStream);

#[cfg(test)]
mod tests {
    use super::*;
    use ::tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Both directions at once through the halves, each half in its own future, with more
    /// data than the socket buffers hold (so every half waits for the reactor many times):
    /// everything arrives, in order, and neither direction misses a wake-up.
    #[test]
    #[cfg_attr(miri, ignore = "socketpair(2), epoll(7)")]
    fn halves_carry_both_directions_at_once() {
        const LEN: usize = 4 << 20;
        let rt = ::tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            let (mut ar, mut aw) = a.split();
            let (mut br, mut bw) = b.split();
            let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
            let (r1, r2, got_b, got_a) = ::tokio::join!(
                async {
                    aw.write_all(&data).await?;
                    aw.shutdown().await
                },
                async {
                    bw.write_all(&data).await?;
                    bw.shutdown().await
                },
                async {
                    let mut v = Vec::new();
                    br.read_to_end(&mut v).await.map(|_| v)
                },
                async {
                    let mut v = Vec::new();
                    ar.read_to_end(&mut v).await.map(|_| v)
                },
            );
            r1.unwrap();
            r2.unwrap();
            assert!(got_b.unwrap() == data, "a to b intact");
            assert!(got_a.unwrap() == data, "b to a intact");
        });
    }
}

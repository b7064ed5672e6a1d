//! Frames with descriptors on a [`UnixStream`]: the length-prefixed format of
//! `ipcraft-core`'s codec, with `SCM_RIGHTS` on a frame's first bytes.

use super::*;

impl UnixStream {
    /// Send one frame (the length-prefixed format of [`FrameWriter`](crate::FrameWriter),
    /// from `ipcraft-core`'s codec) with descriptors attached to its first bytes; receive it
    /// with [`recv_frame_with_fds`](Self::recv_frame_with_fds). Waits while the socket is
    /// full, at most the write timeout for the whole frame.
    ///
    /// Do not mix with a [`FrameReader`](crate::FrameReader) on the receiving side: it reads
    /// ahead with plain reads, and the kernel closes descriptors that arrive on a plain read.
    ///
    /// # Errors
    ///
    /// - [`Error::Frame`] with [`FrameError::Oversized`](crate::FrameError::Oversized) above
    ///   [`DEFAULT_MAX_FRAME`](crate::DEFAULT_MAX_FRAME), [`Error::TooManyFds`]: nothing is
    ///   sent;
    /// - [`Error::TimedOut`] or another error part-way through the frame: the stream then
    ///   carries half a frame and cannot be used for frames any more;
    /// - as [`send_with_fds`](Self::send_with_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft_socket::UnixStream;
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let (r, _w) = std::io::pipe()?;
    /// a.send_frame_with_fds(b"a pipe for you", &[r.as_fd()])?;
    /// a.send_frame_with_fds(b"", &[])?;
    /// let (msg, fds) = b.recv_frame_with_fds(1024, 4)?.unwrap();
    /// assert_eq!((&msg[..], fds.len()), (&b"a pipe for you"[..], 1));
    /// let (msg, fds) = b.recv_frame_with_fds(1024, 4)?.unwrap();
    /// assert_eq!((msg.len(), fds.len()), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_frame_with_fds(&self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let header = ipcraft_core::frame::encode_header(payload.len(), crate::DEFAULT_MAX_FRAME)
            .map_err(Error::Frame)?;
        if fds.len() > SCM_MAX_FD {
            return Err(Error::TooManyFds {
                count: fds.len(),
                max: SCM_MAX_FD,
            });
        }
        let wait = Wait::Until(Deadline::from_timeout(self.write_timeout.get()));
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsgs_storage = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs_storage };
        let iov = [IoSlice::new(&header), IoSlice::new(payload)];
        let total = header.len() + payload.len();
        let mut sent = io_wait(self.fd.as_fd(), Interest::Writable, wait, "sendmsg", |f| {
            sendmsg::<UnixAddr>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                f | MsgFlags::MSG_NOSIGNAL,
                None,
            )
        })?;
        while sent < total {
            let rest = if sent < header.len() {
                let mut v = header[sent..].to_vec();
                v.extend_from_slice(payload);
                v
            } else {
                payload[sent - header.len()..].to_vec()
            };
            sent += self.send_wait(&rest, wait)?;
        }
        Ok(())
    }

    /// Receive one frame sent with [`send_frame_with_fds`](Self::send_frame_with_fds) (or
    /// by any writer of the same format), with the descriptors that came with it (at most
    /// `max_fds`, close-on-exec). `Ok(None)` is a clean end of stream at a frame boundary.
    /// Waits at most the read timeout for the whole frame.
    ///
    /// # Errors
    ///
    /// - [`Error::Frame`] with [`FrameError::IncomingOversized`](crate::FrameError) when the
    ///   frame announces more than `max_frame` bytes, or
    ///   [`FrameError::Truncated`](crate::FrameError) when the stream ends inside a frame;
    ///   descriptors that came with it are closed;
    /// - [`Error::FdsTruncated`] when more than `max_fds` descriptors came: all are closed;
    /// - [`Error::TimedOut`] and the errors of [`recv_with_fds`](Self::recv_with_fds). After
    ///   any error the stream cannot be used for frames any more.
    pub fn recv_frame_with_fds(
        &self,
        max_frame: u32,
        max_fds: usize,
    ) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let wait = Wait::Until(Deadline::from_timeout(self.read_timeout.get()));
        let mut fds = Vec::new();
        let mut header = [0u8; ipcraft_core::frame::HEADER_LEN];
        let mut got = 0;
        while got < header.len() {
            let n = self.recv_piece(&mut header[got..], max_fds, &mut fds, wait)?;
            if n == 0 {
                if got == 0 {
                    return Ok(None);
                }
                return Err(Error::Frame(FrameError::Truncated {
                    expected: header.len(),
                    received: got,
                }));
            }
            got += n;
        }
        let len = ipcraft_core::frame::decode_header(header, max_frame).map_err(Error::Frame)?;
        let mut payload = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = self.recv_piece(&mut payload[got..], max_fds, &mut fds, wait)?;
            if n == 0 {
                return Err(Error::Frame(FrameError::Truncated {
                    expected: header.len() + len,
                    received: header.len() + got,
                }));
            }
            got += n;
        }
        Ok(Some((payload, fds)))
    }

    fn recv_piece(
        &self,
        buf: &mut [u8],
        max_fds: usize,
        fds: &mut Vec<OwnedFd>,
        wait: Wait,
    ) -> Result<usize> {
        let room = max_fds.saturating_sub(fds.len());
        match self.recv_fds_wait(buf, room, wait) {
            Ok((n, more)) => {
                fds.extend(more);
                Ok(n)
            }
            Err(Error::FdsTruncated { received, .. }) => {
                Err(Error::FdsTruncated { received, max_fds })
            }
            Err(e) => Err(e),
        }
    }
}

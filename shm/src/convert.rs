//! A [`Segment`] and its descriptor, both ways.

use crate::error::{Error, Result};
use crate::options::SegmentOptions;
use crate::segment::Segment;
use std::os::fd::OwnedFd;

/// Map a received anonymous ipcraft segment with the default options: as
/// [`Segment::from_fd`]`(fd, 0)`. For a raw segment, a minimum length or read-only access,
/// [`SegmentOptions::from_fd`] is the spelling that takes them.
///
/// # Errors
///
/// As [`SegmentOptions::from_fd`].
impl TryFrom<OwnedFd> for Segment {
    type Error = Error;

    fn try_from(fd: OwnedFd) -> Result<Self> {
        SegmentOptions::new().from_fd(fd, 0)
    }
}

/// Give up the descriptor (to hand the segment to another process). The mapping is
/// unmapped, and a creator's name is removed as its drop would (call
/// [`persist`](Segment::persist) first to keep it); the descriptor keeps the object alive
/// either way.
impl From<Segment> for OwnedFd {
    fn from(segment: Segment) -> Self {
        segment.into_fd()
    }
}

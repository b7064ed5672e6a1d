//! A channel's tag: bytes its creator writes after the layout, for ends to read before they
//! take a role (what [`crate::typed`] stores there: the message type, see its docs).
//!
//! Where: at the first 64-byte boundary after the layout (after the receiver's journal), a
//! header (magic `IPCTAG01`, then the tag's length as a `u32`, then 4 reserved bytes) and
//! the tag's bytes. The segment is that much longer than the layout needs; nothing in the
//! layout moves, so the layout version stays 3: an end that knows nothing of tags (an older
//! ipcraft, or an untyped end) checks only that the segment is *at least* as long as the
//! layout, and never looks past it. An untagged segment has no header there (the segment
//! ends with the layout, or the bytes there are not the magic).
//!
//! The creator writes the tag before the channel header, and nobody writes it after: an
//! end reads it once, at attach, into its own memory, and validates the length against the
//! segment first (a peer may have scribbled over it: then the tag is garbage, and the reader
//! refuses it or finds it untagged, never reads out of bounds).

use super::*;

/// `b"IPCTAG01"` little-endian: a tag follows.
const TAG_MAGIC: u64 = u64::from_le_bytes(*b"IPCTAG01");
/// Magic (8), length (4), reserved (4).
const TAG_HEADER: usize = 16;
/// The longest tag a channel carries.
const MAX_TAG: usize = 4096;

/// Offset of the tag's header: the first 64-byte boundary after the layout.
fn offset(layout: Layout) -> Option<usize> {
    layout.size()?.checked_next_multiple_of(64)
}

/// The segment size for `layout` and `tag` (`None` on overflow).
pub(super) fn segment_size(layout: Layout, tag: &[u8]) -> Option<usize> {
    if tag.is_empty() {
        layout.size()
    } else {
        offset(layout)?
            .checked_add(TAG_HEADER)?
            .checked_add(tag.len())
    }
}

/// Write `tag` (nothing if empty) into a fresh segment of [`segment_size`] bytes.
pub(super) fn write(seg: &Segment, layout: Layout, tag: &[u8]) -> Result<(), ChannelError> {
    if tag.is_empty() {
        return Ok(());
    }
    if tag.len() > MAX_TAG {
        return Err(ChannelError::Corrupted("a channel tag longer than 4 KiB"));
    }
    let at = offset(layout).ok_or(ChannelError::Corrupted("layout overflows"))?;
    seg.write_at(at + TAG_HEADER, tag)?;
    seg.write(at + 8, &(tag.len() as u32))?;
    seg.write(at, &TAG_MAGIC)?;
    Ok(())
}

/// The tag of a mapped channel: `None` when it has none (or its header is garbage).
fn read(region: &SharedRegion, layout: Layout) -> Option<Vec<u8>> {
    let at = offset(layout)?;
    let mut header = [0u8; TAG_HEADER];
    if !region.copy_out(at, &mut header) {
        return None;
    }
    let (magic, rest) = header.split_at(8);
    if u64::from_le_bytes(magic.try_into().ok()?) != TAG_MAGIC {
        return None;
    }
    // Read once, into a local, validated before use.
    let len = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
    if len > MAX_TAG {
        return None;
    }
    let mut tag = vec![0u8; len];
    region
        .copy_out(at.checked_add(TAG_HEADER)?, &mut tag)
        .then_some(tag)
}

/// A channel segment made or mapped and validated, before this process takes a role in it:
/// so that [`crate::typed`] checks the tag first, and an end that refuses the channel leaves
/// no trace in it (no slot claimed, no receiver taken over and then closed).
#[derive(Debug)]
pub(crate) struct Unclaimed {
    made: Made,
}

impl Unclaimed {
    /// A new anonymous channel carrying `tag`, and the memfd for the peer.
    pub(crate) fn anonymous(
        producers: usize,
        capacity: usize,
        tag: &[u8],
    ) -> Result<(Self, OwnedFd), ChannelError> {
        let (made, fd) = new_anonymous(producers, capacity, tag)?;
        Ok((Self { made }, fd))
    }

    /// A new named channel carrying `tag`, made with `options`' mode.
    pub(crate) fn create(
        name: &str,
        producers: usize,
        capacity: usize,
        tag: &[u8],
        options: &NamedOptions,
    ) -> Result<Self, ChannelError> {
        let made = new_named(name, producers, capacity, options.mode, tag)?;
        Ok(Self { made })
    }

    /// A received channel memfd (as [`Sender::from_fd`] checks it).
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        Ok(Self {
            made: attach_fd(fd)?,
        })
    }

    /// A named channel (as [`Sender::open`] checks it, with `options`' trust and mode).
    pub(crate) fn open(name: &str, options: &NamedOptions) -> Result<Self, ChannelError> {
        Ok(Self {
            made: open_named(name, options.mode, options.trusted)?,
        })
    }

    /// The channel's tag, copied out (`None`: it has none).
    pub(crate) fn tag(&self) -> Option<Vec<u8>> {
        read(&self.made.0, self.made.1)
    }

    /// Be a sender: claim a slot.
    pub(crate) fn into_sender(self) -> Result<Sender, ChannelError> {
        Sender::with(self.made)
    }

    /// Be the receiver (or take over from one that closed or died).
    pub(crate) fn into_receiver(self) -> Result<Receiver, ChannelError> {
        Receiver::with(self.made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2)")]
    fn a_tag_round_trips_and_an_untagged_channel_has_none() {
        let (made, _fd) = Unclaimed::anonymous(2, 4096, b"hello tag").unwrap();
        assert_eq!(made.tag().as_deref(), Some(&b"hello tag"[..]));
        let (plain, _fd) = Unclaimed::anonymous(1, 4096, &[]).unwrap();
        assert_eq!(plain.tag(), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2)")]
    fn an_untagged_end_attaches_to_a_tagged_channel() {
        let (made, fd) = Unclaimed::anonymous(1, 4096, b"tag").unwrap();
        let mut rx = made.into_receiver().unwrap();
        let mut tx = Sender::from_fd(fd).unwrap();
        tx.send(b"bytes").unwrap();
        assert_eq!(rx.recv().unwrap(), b"bytes");
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd_create(2)")]
    fn a_scribbled_tag_length_is_refused_not_followed() {
        let (made, _fd) = Unclaimed::anonymous(1, 4096, b"tag").unwrap();
        let at = offset(made.made.1).unwrap();
        made.made.0.copy_in(at + 8, &u32::MAX.to_le_bytes());
        assert_eq!(made.tag(), None);
        made.made.0.copy_in(at + 8, &4000u32.to_le_bytes());
        assert_eq!(made.tag(), None, "past the end of the segment");
    }
}

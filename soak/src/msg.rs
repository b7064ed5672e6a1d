//! The payload every message mechanism carries: who sent it, on which connection, its
//! sequence number, a checksum, then a pattern body derived from all of these. A message that
//! arrives damaged, truncated or spliced from two others fails [`verify`].

use crate::rng::mix;

/// Bytes before the body: stream, connection, sequence number, checksum.
pub const HEADER: usize = 32;
/// The sequence number of a connection's first message, which names the connection.
pub const HELLO: u64 = u64::MAX - 1;

/// What a message says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id {
    /// The producer incarnation (unique in the run).
    pub stream: u64,
    /// The producer's connection number (0 where there are no connections).
    pub conn: u64,
    /// The sequence number in the stream (`HELLO` for a connection's greeting).
    pub seq: u64,
}

/// FNV-1a over 64-bit words (the last zero-padded).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The body length of message `seq` of `stream`, at most `max_body`.
pub fn body_len(stream: u64, seq: u64, max_body: usize) -> usize {
    if seq == HELLO || max_body == 0 {
        return 0;
    }
    let r = mix(stream.rotate_left(17) ^ seq);
    match r % 10 {
        0..7 => (r >> 8) as usize % (max_body.min(64) + 1),
        _ => (r >> 8) as usize % (max_body + 1),
    }
}

fn body_word(id: Id, word: usize) -> [u8; 8] {
    mix(id.stream ^ id.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((word as u64) << 40))
        .to_le_bytes()
}

/// Message `id` into `buf` (cleared first), with a body of at most `max_body` bytes.
pub fn encode(id: Id, max_body: usize, buf: &mut Vec<u8>) {
    let len = body_len(id.stream, id.seq, max_body);
    buf.clear();
    buf.resize(HEADER + len, 0);
    for (w, chunk) in buf[HEADER..].chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&body_word(id, w)[..chunk.len()]);
    }
    buf[0..8].copy_from_slice(&id.stream.to_le_bytes());
    buf[8..16].copy_from_slice(&id.conn.to_le_bytes());
    buf[16..24].copy_from_slice(&id.seq.to_le_bytes());
    let sum = sum_of(buf);
    buf[24..32].copy_from_slice(&sum.to_le_bytes());
}

fn sum_of(buf: &[u8]) -> u64 {
    checksum(&buf[..24]) ^ checksum(&buf[HEADER..]).rotate_left(1)
}

fn word(buf: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Check a received message: its checksum, and its body against the pattern its header
/// names. Returns what it is, or what is wrong with it.
pub fn verify(buf: &[u8], max_body: usize) -> Result<Id, String> {
    if buf.len() < HEADER {
        return Err(format!(
            "{} bytes, shorter than the {HEADER}-byte header",
            buf.len()
        ));
    }
    let id = Id {
        stream: word(buf, 0),
        conn: word(buf, 8),
        seq: word(buf, 16),
    };
    if word(buf, 24) != sum_of(buf) {
        return Err(format!("checksum mismatch (header says {id:?})"));
    }
    let len = body_len(id.stream, id.seq, max_body);
    if buf.len() != HEADER + len {
        return Err(format!(
            "{id:?}: {} body bytes, {len} expected",
            buf.len() - HEADER
        ));
    }
    for (w, chunk) in buf[HEADER..].chunks(8).enumerate() {
        if chunk != &body_word(id, w)[..chunk.len()] {
            return Err(format!("{id:?}: body differs at word {w}"));
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flip_is_caught() {
        let mut buf = Vec::new();
        for seq in 0..200 {
            let id = Id {
                stream: 5,
                conn: 2,
                seq,
            };
            encode(id, 300, &mut buf);
            assert_eq!(verify(&buf, 300), Ok(id));
            for bit in (0..buf.len() * 8).step_by(7) {
                let mut bad = buf.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(verify(&bad, 300).is_err(), "seq {seq} bit {bit}");
            }
            assert!(verify(&buf[..buf.len() - 1], 300).is_err());
        }
    }
}

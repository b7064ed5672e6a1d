//! What a typed end says about its message type: [`TypeInfo`], its [`fingerprint`], and the
//! record a channel carries in its tag.
#![cfg_attr(
    not(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom)))),
    allow(
        dead_code,
        reason = "what a transport needs beyond `Codec`; the channel is the only transport yet"
    )
)]

use super::{Codec, Message};
use std::fmt;

/// How a typed message is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// The value's bytes as they are in memory ([`Plain`](super::Plain)).
    Plain,
    /// postcard, for serde types (`Serde`, feature `serde`).
    Postcard,
    /// An encoding this version of ipcraft does not know (a newer peer's).
    Unknown(u8),
}

impl Encoding {
    /// Its byte in a fingerprint and on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Self::Plain => 1,
            Self::Postcard => 2,
            Self::Unknown(c) => c,
        }
    }

    /// The encoding of code `c`.
    pub const fn from_code(c: u8) -> Self {
        match c {
            1 => Self::Plain,
            2 => Self::Postcard,
            c => Self::Unknown(c),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain => f.write_str("plain data"),
            Self::Postcard => f.write_str("serde/postcard"),
            Self::Unknown(c) => write!(f, "unknown encoding {c}"),
        }
    }
}

/// A message type as a typed end announces it: what its [`fingerprint`](Self::fingerprint)
/// is computed over, kept so that a mismatch can be told in words.
///
/// For plain data, `size` and `align` are the type's (the bytes on the wire are the value's
/// memory). For serde types they are 0: postcard's bytes do not depend on the Rust layout
/// (a 32-bit and a 64-bit process, or two compilers that lay a type out differently, speak
/// the same bytes), and [`Message::SCHEMA`] is what pins the format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TypeInfo {
    /// [`Message::NAME`].
    pub name: String,
    /// How it is encoded.
    pub encoding: Encoding,
    /// `size_of` the type (plain data; 0 for serde).
    pub size: u64,
    /// `align_of` the type (plain data; 0 for serde).
    pub align: u64,
    /// [`Message::SCHEMA`].
    pub schema: u64,
}

/// The longest [`Message::NAME`] a typed end announces; a longer one is cut (at a character
/// boundary) in what is stored, and the fingerprint covers the whole name.
pub const MAX_NAME: usize = 1024;

impl TypeInfo {
    /// The message type of `T` encoded with `C`.
    pub fn of<T: Message, C: Codec<T>>() -> Self {
        let (size, align) = C::layout();
        Self {
            name: T::NAME.to_owned(),
            encoding: C::ENCODING,
            size: size as u64,
            align: align as u64,
            schema: T::SCHEMA,
        }
    }

    /// The 64-bit fingerprint of this type: see [`fingerprint`].
    pub fn fingerprint(&self) -> u64 {
        fingerprint(
            &self.name,
            self.encoding,
            self.size,
            self.align,
            self.schema,
        )
    }

    /// The record a channel's tag carries: fingerprint, encoding, size, align, schema, the
    /// name's length and the name (little-endian; the name cut to [`MAX_NAME`] bytes).
    pub(crate) fn to_record(&self) -> Vec<u8> {
        let mut name = self.name.as_str();
        if name.len() > MAX_NAME {
            let mut end = MAX_NAME;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name = &name[..end];
        }
        let mut r = Vec::with_capacity(RECORD_HEADER + name.len());
        r.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
        r.extend_from_slice(&self.fingerprint().to_le_bytes());
        r.extend_from_slice(&self.size.to_le_bytes());
        r.extend_from_slice(&self.align.to_le_bytes());
        r.extend_from_slice(&self.schema.to_le_bytes());
        r.push(self.encoding.code());
        r.extend_from_slice(&[0; 3]);
        r.extend_from_slice(&(name.len() as u32).to_le_bytes());
        r.extend_from_slice(name.as_bytes());
        r
    }

    /// The type a record announces, and the fingerprint it carries; `None` for bytes that are
    /// not a record (a peer's garbage: the caller reports the channel as untyped).
    pub(crate) fn from_record(r: &[u8]) -> Option<(Self, u64)> {
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                r.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        if word(0)? != RECORD_MAGIC {
            return None;
        }
        let fingerprint = word(1)?;
        let encoding = Encoding::from_code(*r.get(40)?);
        let len = u32::from_le_bytes(r.get(44..48)?.try_into().ok()?) as usize;
        let name = r.get(RECORD_HEADER..RECORD_HEADER.checked_add(len)?)?;
        let info = Self {
            name: String::from_utf8_lossy(name).into_owned(),
            encoding,
            size: word(2)?,
            align: word(3)?,
            schema: word(4)?,
        };
        Some((info, fingerprint))
    }
}

/// `b"IPCTYPE1"`: a typed channel's tag is a type record.
const RECORD_MAGIC: u64 = u64::from_le_bytes(*b"IPCTYPE1");
const RECORD_HEADER: usize = 48;

impl fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}", self.name, self.encoding)?;
        if self.encoding == Encoding::Plain {
            write!(f, ", {} bytes, align {}", self.size, self.align)?;
        }
        write!(f, ", schema {})", self.schema)
    }
}

/// The fingerprint of a message type: 64-bit FNV-1a over a domain string, the encoding's
/// code, the name's length and bytes, then size, alignment and schema (each 8 bytes,
/// little-endian).
///
/// Stable: the same inputs give the same fingerprint on every platform, compiler and
/// ipcraft version (it is part of the wire format), unlike `std::hash::DefaultHasher`, whose
/// output may change between Rust releases. It is a check against mistakes, not against
/// an attacker: 64 bits of a non-cryptographic hash make an accidental collision between
/// two types of one system practically impossible, but a hostile peer can announce any
/// type it likes (decoding stays checked: it gets errors, never memory unsafety).
pub const fn fingerprint(
    name: &str,
    encoding: Encoding,
    size: u64,
    align: u64,
    schema: u64,
) -> u64 {
    let mut h = Fnv::new().bytes(b"ipcraft typed message\0");
    h = h.bytes(&[encoding.code()]);
    h = h.bytes(&(name.len() as u64).to_le_bytes());
    h = h.bytes(name.as_bytes());
    h = h.bytes(&size.to_le_bytes());
    h = h.bytes(&align.to_le_bytes());
    h = h.bytes(&schema.to_le_bytes());
    h.0
}

/// FNV-1a, 64 bits, usable in `const`.
struct Fnv(u64);

impl Fnv {
    const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    const fn bytes(mut self, b: &[u8]) -> Self {
        let mut i = 0;
        while i < b.len() {
            self.0 ^= b[i] as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> TypeInfo {
        TypeInfo {
            name: name.to_owned(),
            encoding: Encoding::Plain,
            size: 16,
            align: 8,
            schema: 3,
        }
    }

    #[test]
    fn the_fingerprint_is_pinned() {
        // Part of the wire format: a change here breaks every peer built before it.
        assert_eq!(Fnv::new().bytes(b"a").0, 0xaf63_dc4c_8601_ec8c);
        let a = info("app::Reading");
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        let mut b = a.clone();
        b.schema = 4;
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.size = 24;
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn a_record_round_trips_and_garbage_is_none() {
        let a = info("app::Reading");
        let r = a.to_record();
        assert_eq!(
            TypeInfo::from_record(&r),
            Some((a.clone(), a.fingerprint()))
        );
        for cut in 0..r.len() {
            assert_eq!(TypeInfo::from_record(&r[..cut]), None, "cut at {cut}");
        }
        assert_eq!(TypeInfo::from_record(&[0xff; 64]), None);
    }

    #[test]
    fn a_long_name_is_cut_at_a_character_boundary() {
        let a = info(&"é".repeat(MAX_NAME));
        let (b, fp) = TypeInfo::from_record(&a.to_record()).unwrap();
        assert_eq!(fp, a.fingerprint());
        assert_eq!(b.name.len(), MAX_NAME);
        assert!(b.name.chars().all(|c| c == 'é'));
    }
}

//! [`TypedError`]: why a typed operation failed.

use super::TypeInfo;
use std::fmt;
use std::io;

/// Why a typed operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TypedError {
    /// The channel failed (`Disconnected`, `TimedOut`, `Full`, `Empty`, ...): see
    /// [`ChannelError`](crate::channel::ChannelError).
    #[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
    Channel(crate::channel::ChannelError),
    /// The peer speaks another message type (found when attaching, before any message).
    TypeMismatch {
        /// The type this end speaks.
        expected: Box<TypeInfo>,
        /// The type the channel was made for.
        found: Box<TypeInfo>,
    },
    /// The channel announces no message type: it was made by an untyped end (or by a peer
    /// that scribbled over its announcement).
    Untyped {
        /// The type this end speaks.
        expected: Box<TypeInfo>,
    },
    /// A message could not be decoded as the type; it was consumed, and the next one is
    /// received normally.
    Decode {
        /// [`Message::NAME`](super::Message::NAME) of the type.
        type_name: &'static str,
        /// How far into the message decoding got (the byte at which it failed).
        offset: usize,
        /// The message's length.
        len: usize,
        /// What was wrong.
        reason: String,
    },
    /// A value could not be encoded (its `Serialize` implementation failed, or it uses what
    /// postcard cannot encode, such as a sequence of unknown length); nothing was sent.
    Encode {
        /// [`Message::NAME`](super::Message::NAME) of the type.
        type_name: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The encoded message is larger than the transport takes; nothing was sent.
    TooLarge {
        /// [`Message::NAME`](super::Message::NAME) of the type.
        type_name: &'static str,
        /// Its encoded length.
        len: usize,
        /// The largest message the transport takes.
        max: usize,
    },
    /// A slice of a zero-sized type: its message would be empty whatever its length, so
    /// the receiver could not tell how many elements it had.
    ZeroSizedSlice {
        /// [`Message::NAME`](super::Message::NAME) of the type.
        type_name: &'static str,
    },
}

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
            Self::Channel(e) => e.fmt(f),
            Self::TypeMismatch { expected, found } => write!(
                f,
                "the peer speaks {found}, this end {expected}: build both ends with the same \
                 message type (same `Message::NAME`, layout and `Message::SCHEMA`)"
            ),
            Self::Untyped { expected } => write!(
                f,
                "the channel announces no message type (an untyped end made it); this end \
                 speaks {expected}: make the channel with `ipcraft::typed`, or use the \
                 untyped API on this end"
            ),
            Self::Decode {
                type_name,
                offset,
                len,
                reason,
            } => write!(
                f,
                "a message of {len} bytes is not a `{type_name}` (at byte {offset}: {reason}); \
                 it was dropped, and the next message is received normally"
            ),
            Self::Encode { type_name, reason } => {
                write!(
                    f,
                    "cannot encode a `{type_name}`: {reason}; nothing was sent"
                )
            }
            Self::TooLarge {
                type_name,
                len,
                max,
            } => write!(
                f,
                "a `{type_name}` of {len} bytes encoded does not fit: the channel takes at most \
                 {max}; nothing was sent (make the channel larger)"
            ),
            Self::ZeroSizedSlice { type_name } => write!(
                f,
                "a slice of `{type_name}`, a zero-sized type, would carry no length: send a \
                 count instead"
            ),
        }
    }
}

impl std::error::Error for TypedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
            Self::Channel(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
impl From<crate::channel::ChannelError> for TypedError {
    fn from(e: crate::channel::ChannelError) -> Self {
        Self::Channel(e)
    }
}

impl From<TypedError> for io::Error {
    fn from(e: TypedError) -> Self {
        let kind = match e {
            #[cfg(all(feature = "shm", feature = "sync", not(all(test, ipcraft_loom))))]
            TypedError::Channel(e) => return e.into(),
            TypedError::TooLarge { .. }
            | TypedError::Encode { .. }
            | TypedError::ZeroSizedSlice { .. } => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_convert_to_io_errors_of_the_right_kind() {
        let e = TypedError::Decode {
            type_name: "app::Reading",
            offset: 3,
            len: 8,
            reason: "bad".into(),
        };
        assert!(e.to_string().contains("`app::Reading`"));
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidData);
        let e = TypedError::TooLarge {
            type_name: "t",
            len: 9,
            max: 8,
        };
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::InvalidInput);
    }
}

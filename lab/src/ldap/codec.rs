//! Framing of LDAP messages on a connection: BER in, [`Request`]s out, with AD's limit on
//! the size of one request.
//!
//! The decoder follows `ldap3_proto::LdapCodec` but takes the filter of a search request out
//! of the BER structure before `ldap3_proto` decodes the message. The lab decodes that filter
//! with binary values ([`filter::decode`]) and gives `ldap3_proto` a placeholder instead.

use bytes::{Buf, BytesMut};
use ldap3_lber::common::TagClass;
use ldap3_lber::parse::{DEFAULT_MAX_BER_DEPTH, Parser};
use ldap3_lber::structure::{PL, StructureTag};
use ldap3_proto::proto::LdapMsg;
use tokio_util::codec::{Decoder, Encoder};

use super::filter::{self, Filter};

/// A decoded request and, for a search, its filter with binary values.
#[derive(Debug)]
pub(super) struct Request {
    /// The message; a search request carries a placeholder filter.
    pub msg: LdapMsg,
    /// The real filter of a search request.
    pub filter: Option<Filter>,
}

/// The reasons a connection's byte stream cannot be read as LDAP.
#[derive(Debug, thiserror::Error)]
pub(super) enum CodecError {
    /// Reading from or writing to the socket failed.
    #[error("failed to read or write the connection: {0}")]
    Io(#[from] std::io::Error),
    /// One request exceeds MaxReceiveBuffer.
    #[error("a request is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The bytes are not a valid LDAP message.
    #[error("invalid LDAP message: {reason}")]
    Malformed {
        /// The problem found.
        reason: String,
    },
}

/// The codec of one connection.
#[derive(Debug)]
pub(super) struct LdapServerCodec {
    max_message: usize,
}

impl LdapServerCodec {
    /// Creates a codec that rejects requests larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self { max_message }
    }
}

impl Decoder for LdapServerCodec {
    type Item = Request;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, CodecError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let (size, tag) = match Parser::new(DEFAULT_MAX_BER_DEPTH).parse(buf) {
            Ok((rest, tag)) => (buf.len() - rest.len(), tag),
            Err(ldap3_lber::Err::Incomplete(_)) => {
                // The message is not complete yet. Refuse to buffer more than one maximum
                // message, so a client cannot make the server hold unbounded data.
                if buf.len() > self.max_message {
                    return Err(CodecError::TooLarge {
                        limit: self.max_message,
                    });
                }
                return Ok(None);
            }
            Err(error) => {
                return Err(CodecError::Malformed {
                    reason: format!("BER does not parse: {error:?}"),
                });
            }
        };
        if size > self.max_message {
            return Err(CodecError::TooLarge {
                limit: self.max_message,
            });
        }
        buf.advance(size);
        into_request(tag).map(Some)
    }
}

impl Encoder<LdapMsg> for LdapServerCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> Result<(), CodecError> {
        let tag: StructureTag = msg.into();
        ldap3_lber::write::encode_into(buf, tag)?;
        Ok(())
    }
}

/// Converts one BER message into a request, decoding a search filter separately.
fn into_request(mut tag: StructureTag) -> Result<Request, CodecError> {
    let malformed = |reason: String| CodecError::Malformed { reason };
    let mut filter = None;
    // LDAPMessage ::= SEQUENCE { messageID, protocolOp, controls [0] OPTIONAL }, and a
    // SearchRequest is [APPLICATION 3] with the filter as its seventh element.
    if let PL::C(parts) = &mut tag.payload
        && let Some(StructureTag {
            class: TagClass::Application,
            id: 3,
            payload: PL::C(search),
        }) = parts.get_mut(1)
        && search.len() > 6
    {
        let raw = std::mem::replace(&mut search[6], filter::placeholder());
        filter = Some(filter::decode(raw).map_err(malformed)?);
    }
    let msg = LdapMsg::try_from(tag).map_err(|error| malformed(error.to_string()))?;
    Ok(Request { msg, filter })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::proto::{
        LdapDerefAliases, LdapFilter, LdapOp, LdapSearchRequest, LdapSearchScope,
    };

    fn encoded(msg: LdapMsg) -> BytesMut {
        let mut buf = BytesMut::new();
        LdapServerCodec::new(1024)
            .encode(msg, &mut buf)
            .expect("encodes");
        buf
    }

    fn search(filter: LdapFilter) -> LdapMsg {
        LdapMsg::new(
            7,
            LdapOp::SearchRequest(LdapSearchRequest {
                base: "DC=lab,DC=example".into(),
                scope: LdapSearchScope::Subtree,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter,
                attrs: vec!["cn".into()],
            }),
        )
    }

    #[test]
    fn search_filter_is_decoded_separately() {
        let mut buf = encoded(search(LdapFilter::Equality(
            "sAMAccountName".into(),
            "alice".into(),
        )));
        let request = LdapServerCodec::new(1024)
            .decode(&mut buf)
            .expect("decodes")
            .expect("complete");
        assert_eq!(request.msg.msgid, 7);
        assert_eq!(
            request.filter,
            Some(Filter::Equality("sAMAccountName".into(), b"alice".to_vec()))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_message_waits_for_more() {
        let full = encoded(search(LdapFilter::Present("cn".into())));
        let mut partial = BytesMut::from(&full[..full.len() - 3]);
        assert!(
            LdapServerCodec::new(1024)
                .decode(&mut partial)
                .expect("no error yet")
                .is_none()
        );
    }

    #[test]
    fn oversized_message_is_rejected() {
        let mut buf = encoded(search(LdapFilter::Equality(
            "description".into(),
            "x".repeat(200),
        )));
        let error = LdapServerCodec::new(100)
            .decode(&mut buf)
            .expect_err("too large");
        assert!(
            matches!(error, CodecError::TooLarge { limit: 100 }),
            "{error}"
        );
        let mut header_only = BytesMut::from(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff][..]);
        header_only.extend_from_slice(&[0u8; 200]);
        assert!(matches!(
            LdapServerCodec::new(100).decode(&mut header_only),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut buf = BytesMut::from(&b"\x04\x03abc"[..]);
        assert!(matches!(
            LdapServerCodec::new(1024).decode(&mut buf),
            Err(CodecError::Malformed { .. })
        ));
    }
}

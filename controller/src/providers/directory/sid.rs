//! Security identifiers (SIDs) in the binary form of `objectSid` and the `S-1-5-21-...`
//! string form.

use std::fmt;

/// RID of the domain's Domain Users group.
pub const DOMAIN_USERS_RID: u32 = 513;

/// A security identifier: revision, 48-bit identifier authority and up to 15
/// sub-authorities, the last of which is the relative identifier (RID) of an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sid {
    revision: u8,
    authority: u64,
    sub_authorities: Vec<u32>,
}

impl Sid {
    /// Parses the binary form: revision byte, sub-authority count byte, 6-byte big-endian
    /// authority, then the sub-authorities as 4-byte little-endian numbers.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&revision, rest) = bytes.split_first()?;
        let (&count, rest) = rest.split_first()?;
        if revision != 1 || count > 15 || rest.len() != 6 + 4 * usize::from(count) {
            return None;
        }
        let (authority_bytes, sub_authority_bytes) = rest.split_at(6);
        let authority = authority_bytes
            .iter()
            .fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
        let sub_authorities = sub_authority_bytes
            .chunks_exact(4)
            .map(|chunk| u32::from_le_bytes(chunk.try_into().expect("chunks_exact yields 4 bytes")))
            .collect();
        Some(Sid {
            revision,
            authority,
            sub_authorities,
        })
    }

    /// Encodes the binary form, as stored in `objectSid`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let count =
            u8::try_from(self.sub_authorities.len()).expect("a SID has at most 15 sub-authorities");
        let mut bytes = vec![self.revision, count];
        bytes.extend_from_slice(&self.authority.to_be_bytes()[2..]);
        for sub_authority in &self.sub_authorities {
            bytes.extend_from_slice(&sub_authority.to_le_bytes());
        }
        bytes
    }

    /// Returns the relative identifier, the last sub-authority.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities.last().copied()
    }

    /// Returns the SID without its RID: for an account, the SID of its domain.
    pub fn domain(&self) -> Option<Sid> {
        let (_, domain) = self.sub_authorities.split_last()?;
        Some(Sid {
            revision: self.revision,
            authority: self.authority,
            sub_authorities: domain.to_vec(),
        })
    }

    /// Returns the SID of the account with `rid` in this domain.
    pub fn with_rid(&self, rid: u32) -> Sid {
        let mut sub_authorities = self.sub_authorities.clone();
        sub_authorities.push(rid);
        Sid {
            revision: self.revision,
            authority: self.authority,
            sub_authorities,
        }
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}-{}", self.revision, self.authority)?;
        for sub_authority in &self.sub_authorities {
            write!(f, "-{sub_authority}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // objectSid of a Samba test account, base64 "AQUAAAAAAAUVAAAAMivNxFijWa+C2YouTgQAAA==".
    const ACCOUNT_SID: [u8; 28] = [
        0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x32, 0x2b, 0xcd,
        0xc4, 0x58, 0xa3, 0x59, 0xaf, 0x82, 0xd9, 0x8a, 0x2e, 0x4e, 0x04, 0x00, 0x00,
    ];

    #[test]
    fn sid_parses_and_formats_account_sid() {
        let sid = Sid::from_bytes(&ACCOUNT_SID).expect("the account SID should parse");
        assert_eq!(
            sid.to_string(),
            "S-1-5-21-3301780274-2941887320-780851586-1102"
        );
        assert_eq!(sid.rid(), Some(1102));
        assert_eq!(sid.to_bytes(), ACCOUNT_SID);
    }

    #[test]
    fn sid_derives_domain_and_domain_users() {
        let sid = Sid::from_bytes(&ACCOUNT_SID).expect("the account SID should parse");
        let domain = sid.domain().expect("an account SID has a domain");
        assert_eq!(
            domain.to_string(),
            "S-1-5-21-3301780274-2941887320-780851586"
        );
        assert_eq!(
            domain.with_rid(DOMAIN_USERS_RID).to_string(),
            "S-1-5-21-3301780274-2941887320-780851586-513"
        );
    }

    #[test]
    fn sid_rejects_malformed_bytes() {
        assert_eq!(Sid::from_bytes(&[]), None);
        assert_eq!(Sid::from_bytes(&ACCOUNT_SID[..27]), None);
        let mut wrong_revision = ACCOUNT_SID;
        wrong_revision[0] = 2;
        assert_eq!(Sid::from_bytes(&wrong_revision), None);
    }
}

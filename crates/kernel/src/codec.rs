//! Canonical protobuf decoding: a message is accepted only if re-encoding it gives back the
//! exact bytes received, so every signed or hashed value has one encoding.

use prost::Message;

use crate::error::DecodeError;

/// Decodes `bytes` as `M` and refuses any encoding other than the canonical one.
pub fn decode_canonical<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, DecodeError> {
    let message = M::decode(bytes).map_err(|e| DecodeError::Protobuf {
        what,
        reason: e.to_string(),
    })?;
    let canonical = message.encode_to_vec();
    if canonical != bytes {
        return Err(DecodeError::NonCanonical {
            what,
            received: bytes.len(),
            canonical: canonical.len(),
        });
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use citychain_proto::citychain::kernel::v1 as pb;

    #[test]
    fn unknown_fields_and_reordering_are_refused() {
        let body = pb::TxBody {
            type_url: "x".into(),
            value: vec![1, 2],
            subjects: vec![],
        };
        let bytes = body.encode_to_vec();
        assert_eq!(
            decode_canonical::<pb::TxBody>("TxBody", &bytes).unwrap(),
            body
        );
        // An unknown field 9 (varint 1) appended.
        let mut extra = bytes.clone();
        extra.extend_from_slice(&[0x48, 0x01]);
        assert!(matches!(
            decode_canonical::<pb::TxBody>("TxBody", &extra),
            Err(DecodeError::NonCanonical { .. })
        ));
        // Field 2 before field 1.
        let mut swapped = vec![0x12, 0x02, 1, 2];
        swapped.extend_from_slice(&[0x0a, 0x01, b'x']);
        assert!(matches!(
            decode_canonical::<pb::TxBody>("TxBody", &swapped),
            Err(DecodeError::NonCanonical { .. })
        ));
    }
}

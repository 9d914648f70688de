//! ethtool netlink bitsets (`ETHTOOL_A_BITSET_*`, include/uapi/linux/ethtool_netlink*.h), the
//! format of the four feature sets of `FEATURES_GET` (and of link modes, flags, … in other
//! ethtool messages).

use std::collections::{BTreeMap, BTreeSet};

use neli::{consts::genl::NlAttrType, genl::Nlattr, types::Buffer};

use super::super::{attr_string, decode, decode_with_len};

/// `ETHTOOL_A_BITSET_*`.
#[neli::neli_enum(serialized_type = "u16")]
pub(super) enum BitsetAttr {
    Nomask = 1,
    Size = 2,
    Bits = 3,
    Value = 4,
    Mask = 5,
}
impl NlAttrType for BitsetAttr {}

/// `ETHTOOL_A_BITSET_BITS_*`.
#[neli::neli_enum(serialized_type = "u16")]
pub(super) enum BitsetBitsAttr {
    Bit = 1,
}
impl NlAttrType for BitsetBitsAttr {}

/// `ETHTOOL_A_BITSET_BIT_*`.
#[neli::neli_enum(serialized_type = "u16")]
pub(super) enum BitsetBitAttr {
    Index = 1,
    Name = 2,
    Value = 3,
}
impl NlAttrType for BitsetBitAttr {}

/// A decoded ethtool bitset: which bits are set, and the names the kernel gave them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Bitset {
    pub(super) set: BTreeSet<u32>,
    pub(super) names: BTreeMap<u32, String>,
}

/// Decodes an ethtool bitset nest (`ETHTOOL_A_BITSET_*`) in either form:
/// - compact: `VALUE` (and `MASK`) u32 arrays;
/// - verbose: a `BITS` list of `BIT` nests with `INDEX`, `NAME` and, unless `NOMASK` is set, a
///   `VALUE` flag; with `NOMASK` only set bits are listed and each listed bit is set.
pub(super) fn parse_bitset<T: NlAttrType>(attr: &Nlattr<T, Buffer>) -> Result<Bitset, String> {
    let fields = attr
        .get_attr_handle::<BitsetAttr>()
        .map_err(|e| format!("malformed bitset: {e}"))?;
    let mut nomask = false;
    let mut size = None;
    let mut bits = None;
    let mut value = None;
    for a in fields.iter() {
        let payload = a.nla_payload().as_ref();
        match a.nla_type().nla_type() {
            BitsetAttr::Nomask => nomask = true,
            BitsetAttr::Size => size = decode::<u32>(payload),
            BitsetAttr::Bits => bits = Some(a),
            BitsetAttr::Value => {
                value = Some(
                    decode_with_len::<Vec<u32>>(payload)
                        .map_err(|e| format!("malformed bitset value: {e}"))?,
                )
            }
            // `MASK` only says which bits `VALUE` speaks for; all of them do here.
            _ => {}
        }
    }
    let mut out = Bitset::default();
    if let Some(words) = value {
        let nbits = size.unwrap_or(u32::try_from(words.len() * 32).unwrap_or(u32::MAX));
        for (w, word) in (0u32..).zip(&words) {
            for b in 0..32u32 {
                let index = w * 32 + b;
                if index < nbits && word & (1 << b) != 0 {
                    out.set.insert(index);
                }
            }
        }
    } else if let Some(bits) = bits {
        let list = bits
            .get_attr_handle::<BitsetBitsAttr>()
            .map_err(|e| format!("malformed bitset bits: {e}"))?;
        for bit in list.iter() {
            if *bit.nla_type().nla_type() != BitsetBitsAttr::Bit {
                continue;
            }
            let fields = bit
                .get_attr_handle::<BitsetBitAttr>()
                .map_err(|e| format!("malformed bitset bit: {e}"))?;
            let mut index = None;
            let mut name = None;
            let mut on = nomask;
            for f in fields.iter() {
                let payload = f.nla_payload().as_ref();
                match f.nla_type().nla_type() {
                    BitsetBitAttr::Index => index = decode::<u32>(payload),
                    BitsetBitAttr::Name => name = Some(attr_string(payload)),
                    BitsetBitAttr::Value => on = true,
                    _ => {}
                }
            }
            let index = index.ok_or("bitset bit without an index")?;
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                out.names.insert(index, name);
            }
            if on {
                out.set.insert(index);
            }
        }
    } else if size.is_some_and(|s| s > 0) && !nomask {
        return Err("bitset with neither bits nor value".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use neli::{ToBytes, types::GenlBuffer};

    use super::super::{FeaturesAttr, attr, nest};
    use super::*;

    fn bit(index: u32, name: &str, value: bool) -> Nlattr<BitsetBitsAttr, Buffer> {
        let mut fields = vec![
            attr(BitsetBitAttr::Index, index).expect("index"),
            attr(BitsetBitAttr::Name, name).expect("name"),
        ];
        if value {
            fields.push(attr(BitsetBitAttr::Value, Buffer::new()).expect("value"));
        }
        nest(BitsetBitsAttr::Bit, &fields).expect("bit")
    }

    /// Serializes and re-parses, as the kernel's bytes would arrive.
    fn roundtrip(a: Nlattr<FeaturesAttr, Buffer>) -> Nlattr<FeaturesAttr, Buffer> {
        let mut buf = Cursor::new(Vec::new());
        a.to_bytes(&mut buf).expect("serialize");
        let parsed: GenlBuffer<FeaturesAttr, Buffer> =
            decode_with_len(buf.get_ref()).expect("parse");
        parsed.iter().next().cloned().expect("one attr")
    }

    #[test]
    fn bitset_forms() {
        // NOMASK list: listed bits are set.
        let bits = nest(
            BitsetAttr::Bits,
            &[bit(0, "tx-scatter-gather", false), bit(65, "x", false)],
        )
        .expect("bits");
        let nomask = nest(
            FeaturesAttr::Active,
            &[
                attr(BitsetAttr::Nomask, Buffer::new()).expect("nomask"),
                attr(BitsetAttr::Size, 70u32).expect("size"),
                bits,
            ],
        )
        .expect("nest");
        let b = parse_bitset(&roundtrip(nomask)).expect("nomask bitset");
        assert_eq!(b.set, BTreeSet::from([0, 65]));
        assert_eq!(
            b.names.get(&0).map(String::as_str),
            Some("tx-scatter-gather")
        );

        // Masked list: only bits with VALUE are set.
        let bits = nest(BitsetAttr::Bits, &[bit(0, "a", false), bit(3, "b", true)]).expect("bits");
        let masked = nest(
            FeaturesAttr::Active,
            &[attr(BitsetAttr::Size, 70u32).expect("size"), bits],
        )
        .expect("nest");
        let b = parse_bitset(&roundtrip(masked)).expect("masked bitset");
        assert_eq!(b.set, BTreeSet::from([3]));
        assert_eq!(b.names.len(), 2);

        // Compact: u32 words.
        let mut words = Vec::new();
        words.extend_from_slice(&0b1001u32.to_ne_bytes());
        words.extend_from_slice(&0b10u32.to_ne_bytes());
        let compact = nest(
            FeaturesAttr::Active,
            &[
                attr(BitsetAttr::Size, 64u32).expect("size"),
                attr(BitsetAttr::Value, words.as_slice()).expect("value"),
            ],
        )
        .expect("nest");
        let b = parse_bitset(&roundtrip(compact)).expect("compact bitset");
        assert_eq!(b.set, BTreeSet::from([0, 3, 33]));
    }
}

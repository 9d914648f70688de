//! ethtool over generic netlink: `FEATURES_GET` (the four feature bitsets of a device) and
//! `STRSET_GET` (the kernel's feature names), read as `ethtool -k` shows them.
//!
//! Message and attribute numbers: include/uapi/linux/ethtool_netlink_generated.h (and
//! ethtool_netlink.h); neli and libc define none of them.

use std::collections::{BTreeMap, BTreeSet};

use neli::{
    Size, ToBytes,
    consts::{
        genl::{Cmd, CtrlAttr, CtrlCmd, NlAttrType},
        nl::{GenlId, NlmF},
        socket::NlFamily,
    },
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder},
    types::{Buffer, GenlBuffer},
};
use nix::errno::Errno;

use super::{Conn, NetlinkError, attr_string, decode, decode_with_len};
use crate::evidence::{FeatureState, Features};

const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;
/// `CTRL_CMD_GETFAMILY` speaks controller version 2 (as `genl-ctrl-list` and neli do).
const GENL_CTRL_VERSION: u8 = 2;
/// `ETH_SS_FEATURES` of `enum ethtool_stringset` (include/uapi/linux/ethtool.h).
const ETH_SS_FEATURES: u32 = 4;

/// `ETHTOOL_MSG_*` user-to-kernel commands.
#[neli::neli_enum(serialized_type = "u8")]
enum EthtoolMsg {
    StrsetGet = 1,
    FeaturesGet = 11,
}
impl Cmd for EthtoolMsg {}

/// `ETHTOOL_MSG_*_REPLY` kernel-to-user commands.
#[neli::neli_enum(serialized_type = "u8")]
enum EthtoolReply {
    StrsetGetReply = 1,
    FeaturesGetReply = 11,
}
impl Cmd for EthtoolReply {}

/// `ETHTOOL_A_HEADER_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum HeaderAttr {
    DevName = 2,
}
impl NlAttrType for HeaderAttr {}

/// `ETHTOOL_A_FEATURES_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum FeaturesAttr {
    Header = 1,
    Hw = 2,
    Wanted = 3,
    Active = 4,
    Nochange = 5,
}
impl NlAttrType for FeaturesAttr {}

/// `ETHTOOL_A_BITSET_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum BitsetAttr {
    Nomask = 1,
    Size = 2,
    Bits = 3,
    Value = 4,
    Mask = 5,
}
impl NlAttrType for BitsetAttr {}

/// `ETHTOOL_A_BITSET_BITS_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum BitsetBitsAttr {
    Bit = 1,
}
impl NlAttrType for BitsetBitsAttr {}

/// `ETHTOOL_A_BITSET_BIT_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum BitsetBitAttr {
    Index = 1,
    Name = 2,
    Value = 3,
}
impl NlAttrType for BitsetBitAttr {}

/// `ETHTOOL_A_STRSET_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum StrsetAttr {
    Header = 1,
    Stringsets = 2,
}
impl NlAttrType for StrsetAttr {}

/// `ETHTOOL_A_STRINGSETS_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum StringsetsAttr {
    Stringset = 1,
}
impl NlAttrType for StringsetsAttr {}

/// `ETHTOOL_A_STRINGSET_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum StringsetAttr {
    Id = 1,
    Strings = 3,
}
impl NlAttrType for StringsetAttr {}

/// `ETHTOOL_A_STRINGS_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum StringsAttr {
    String = 1,
}
impl NlAttrType for StringsAttr {}

/// `ETHTOOL_A_STRING_*`.
#[neli::neli_enum(serialized_type = "u16")]
enum StringAttr {
    Index = 1,
    Value = 2,
}
impl NlAttrType for StringAttr {}

/// Offload features of `ifname` as `ethtool -k` shows them (ethtool netlink `FEATURES_GET`).
///
/// The map holds every feature the kernel knows (the `netdev-features` string set), with
/// `active`, `wanted` (requested) and `fixed` (not changeable, or in the no-change set).
pub fn features(ifname: &str) -> Result<Features, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Generic, format!("ethtool features of {ifname}"))?;
    let family = resolve_family(&mut conn, ETHTOOL_GENL_NAME)?;

    // FEATURES_GET first: a missing device is reported by it (ENODEV).
    let request = features_request(ifname).map_err(|e| conn.build_error(e))?;
    let reply = conn
        .request::<u16, _, Genlmsghdr<EthtoolReply, FeaturesAttr>>(family, NlmF::empty(), request)
        .map_err(|e| match e {
            NetlinkError::Kernel {
                op,
                errno: Errno::ENODEV,
                ..
            } => NetlinkError::NoDevice {
                op,
                ifname: ifname.to_string(),
            },
            e => e,
        })?;
    let sets = parse_features_reply(&reply.messages).map_err(|e| conn.malformed(e))?;

    // Every feature name the kernel knows, by bit index.
    let request = strset_request(ETH_SS_FEATURES).map_err(|e| conn.build_error(e))?;
    let reply = conn.request::<u16, _, Genlmsghdr<EthtoolReply, StrsetAttr>>(
        family,
        NlmF::empty(),
        request,
    )?;
    let names = parse_strset_reply(&reply.messages, ETH_SS_FEATURES)
        .map_err(|e| conn.malformed(format!("netdev-features strings: {e}")))?;

    Ok(combine_features(&names, &sets))
}

/// The id of generic netlink family `name` (`CTRL_CMD_GETFAMILY`), asked on `conn` so the
/// receive timeout applies (neli's `NlRouter::resolve_genl_family` has none).
fn resolve_family(conn: &mut Conn, name: &str) -> Result<u16, NetlinkError> {
    let request = genl_msg(
        CtrlCmd::Getfamily,
        GENL_CTRL_VERSION,
        vec![attr(CtrlAttr::FamilyName, name).map_err(|e| conn.build_error(e))?],
    )
    .map_err(|e| conn.build_error(e))?;
    let reply = conn
        .request::<GenlId, _, Genlmsghdr<CtrlCmd, CtrlAttr>>(GenlId::Ctrl, NlmF::empty(), request)
        .map_err(|e| match e {
            NetlinkError::Kernel {
                op,
                errno: Errno::ENOENT,
                ..
            } => NetlinkError::NoFamily {
                op,
                family: name.to_string(),
            },
            e => e,
        })?;
    reply
        .messages
        .iter()
        .find_map(|(_, msg)| {
            msg.attrs()
                .get_attr_handle()
                .get_attr_payload_as::<u16>(CtrlAttr::FamilyId)
                .ok()
        })
        .ok_or_else(|| {
            conn.malformed(format!(
                "generic netlink family {name:?}: reply without an id"
            ))
        })
}

// ---------------------------------------------------------------------------------------------
// Requests

fn attr<T: NlAttrType, P: Size + ToBytes>(
    kind: T,
    payload: P,
) -> Result<Nlattr<T, Buffer>, String> {
    NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(kind)
                .build()
                .map_err(|e| format!("attribute type {kind:?}: {e}"))?,
        )
        .nla_payload(payload)
        .build()
        .map_err(|e| format!("attribute {kind:?}: {e}"))
}

/// A nest marked `NLA_F_NESTED`, even when empty (ethtool validates strictly).
fn nest<T: NlAttrType, C: NlAttrType>(
    kind: T,
    children: &[Nlattr<C, Buffer>],
) -> Result<Nlattr<T, Buffer>, String> {
    let mut nest = NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(kind)
                .nla_nested(true)
                .build()
                .map_err(|e| format!("attribute type {kind:?}: {e}"))?,
        )
        .nla_payload(Buffer::new())
        .build()
        .map_err(|e| format!("nest {kind:?}: {e}"))?;
    for child in children {
        nest = nest
            .nest(child)
            .map_err(|e| format!("cannot nest in {kind:?}: {e}"))?;
    }
    Ok(nest)
}

fn genl_msg<C: Cmd, T: NlAttrType>(
    cmd: C,
    version: u8,
    attrs: Vec<Nlattr<T, Buffer>>,
) -> Result<Genlmsghdr<C, T>, String> {
    GenlmsghdrBuilder::default()
        .cmd(cmd)
        .version(version)
        .attrs(attrs.into_iter().collect::<GenlBuffer<T, Buffer>>())
        .build()
        .map_err(|e| format!("genl message: {e}"))
}

fn features_request(ifname: &str) -> Result<Genlmsghdr<EthtoolMsg, FeaturesAttr>, String> {
    let header = nest(FeaturesAttr::Header, &[attr(HeaderAttr::DevName, ifname)?])?;
    genl_msg(EthtoolMsg::FeaturesGet, ETHTOOL_GENL_VERSION, vec![header])
}

fn strset_request(set: u32) -> Result<Genlmsghdr<EthtoolMsg, StrsetAttr>, String> {
    let header = nest::<_, HeaderAttr>(StrsetAttr::Header, &[])?;
    let stringset = nest(StringsetsAttr::Stringset, &[attr(StringsetAttr::Id, set)?])?;
    let stringsets = nest(StrsetAttr::Stringsets, &[stringset])?;
    genl_msg(
        EthtoolMsg::StrsetGet,
        ETHTOOL_GENL_VERSION,
        vec![header, stringsets],
    )
}

// ---------------------------------------------------------------------------------------------
// Replies

/// A decoded ethtool bitset: which bits are set, and the names the kernel gave them.
#[derive(Debug, Default, Clone, PartialEq)]
struct Bitset {
    set: BTreeSet<u32>,
    names: BTreeMap<u32, String>,
}

/// Decodes an ethtool bitset nest (`ETHTOOL_A_BITSET_*`) in either form:
/// - compact: `VALUE` (and `MASK`) u32 arrays;
/// - verbose: a `BITS` list of `BIT` nests with `INDEX`, `NAME` and, unless `NOMASK` is set, a
///   `VALUE` flag; with `NOMASK` only set bits are listed and each listed bit is set.
fn parse_bitset<T: NlAttrType>(attr: &Nlattr<T, Buffer>) -> Result<Bitset, String> {
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

/// The four bitsets of a `FEATURES_GET` reply.
#[derive(Debug, Default)]
struct FeatureSets {
    hw: Bitset,
    wanted: Bitset,
    active: Bitset,
    nochange: Bitset,
}

fn parse_features_reply(
    messages: &[(u16, Genlmsghdr<EthtoolReply, FeaturesAttr>)],
) -> Result<FeatureSets, String> {
    let (_, reply) = messages
        .iter()
        .find(|(_, m)| *m.cmd() == EthtoolReply::FeaturesGetReply)
        .ok_or("no FEATURES_GET reply")?;
    let mut sets = FeatureSets::default();
    let mut seen = 0;
    for attr in reply.attrs().iter() {
        let slot = match attr.nla_type().nla_type() {
            FeaturesAttr::Hw => &mut sets.hw,
            FeaturesAttr::Wanted => &mut sets.wanted,
            FeaturesAttr::Active => &mut sets.active,
            FeaturesAttr::Nochange => &mut sets.nochange,
            _ => continue,
        };
        *slot = parse_bitset(attr)?;
        seen += 1;
    }
    if seen < 4 {
        return Err(format!("FEATURES_GET reply with {seen} of 4 bitsets"));
    }
    Ok(sets)
}

/// Index → name of string set `set` from a `STRSET_GET` reply.
fn parse_strset_reply(
    messages: &[(u16, Genlmsghdr<EthtoolReply, StrsetAttr>)],
    set: u32,
) -> Result<BTreeMap<u32, String>, String> {
    let malformed = |what: &str, e: neli::err::DeError| format!("malformed {what}: {e}");
    for (_, msg) in messages {
        if *msg.cmd() != EthtoolReply::StrsetGetReply {
            continue;
        }
        let handle = msg.attrs().get_attr_handle();
        let Ok(stringsets) = handle.get_nested_attributes::<StringsetsAttr>(StrsetAttr::Stringsets)
        else {
            continue;
        };
        for stringset in stringsets.iter() {
            if *stringset.nla_type().nla_type() != StringsetsAttr::Stringset {
                continue;
            }
            let fields = stringset
                .get_attr_handle::<StringsetAttr>()
                .map_err(|e| malformed("string set", e))?;
            if fields.get_attr_payload_as::<u32>(StringsetAttr::Id).ok() != Some(set) {
                continue;
            }
            let mut names = BTreeMap::new();
            let Ok(strings) = fields.get_nested_attributes::<StringsAttr>(StringsetAttr::Strings)
            else {
                return Ok(names);
            };
            for string in strings.iter() {
                if *string.nla_type().nla_type() != StringsAttr::String {
                    continue;
                }
                let fields = string
                    .get_attr_handle::<StringAttr>()
                    .map_err(|e| malformed("string", e))?;
                let index = fields.get_attr_payload_as::<u32>(StringAttr::Index).ok();
                let value = fields
                    .get_attribute(StringAttr::Value)
                    .map(|a| attr_string(a.nla_payload().as_ref()));
                if let (Some(index), Some(value)) = (index, value) {
                    names.insert(index, value);
                }
            }
            return Ok(names);
        }
    }
    Err(format!("no string set {set} in the STRSET_GET reply"))
}

/// Builds the feature map as `ethtool -k` reads it: `[fixed]` when not in `hw` (changeable) or
/// in `nochange`. Every named bit of the string set or of the bitsets gets an entry.
fn combine_features(strings: &BTreeMap<u32, String>, sets: &FeatureSets) -> Features {
    let mut names: BTreeMap<u32, &str> = strings.iter().map(|(i, n)| (*i, n.as_str())).collect();
    for set in [&sets.hw, &sets.wanted, &sets.active, &sets.nochange] {
        for (index, name) in &set.names {
            names.entry(*index).or_insert(name.as_str());
        }
    }
    let mut map = BTreeMap::new();
    for (index, name) in names {
        if name.is_empty() {
            continue;
        }
        map.insert(
            name.to_string(),
            FeatureState {
                active: sets.active.set.contains(&index),
                wanted: sets.wanted.set.contains(&index),
                fixed: !sets.hw.set.contains(&index) || sets.nochange.set.contains(&index),
            },
        );
    }
    Features(map)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn loopback_features() {
        let f = features("lo").expect("features of lo");
        // lo has no changeable features (hw_features is empty), so `wanted` is all off.
        let sg = f.get("tx-scatter-gather").expect("tx-scatter-gather known");
        assert!(sg.active && sg.fixed);
        assert!(f.is_active("tx-checksum-ip-generic"));
        // Known to the kernel but off and fixed on lo.
        let fcoe = f.get("tx-checksum-fcoe-crc").expect("fcoe crc known");
        assert_eq!(
            *fcoe,
            FeatureState {
                active: false,
                wanted: false,
                fixed: true
            }
        );
        assert!(f.0.len() > 40, "only {} features", f.0.len());
    }

    #[test]
    fn missing_device_error_names_it() {
        let e = features("nonexistent0").expect_err("no such device");
        assert!(e.to_string().contains("nonexistent0"), "{e}");
        assert!(e.to_string().contains("in this network namespace"), "{e}");
        assert_eq!(e.errno(), Some(Errno::ENODEV));
        assert!(matches!(e, NetlinkError::NoDevice { .. }), "{e:?}");
    }

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

    #[test]
    fn requested_on_but_off() {
        // A bond whose lower device lacks SG: `tx-scatter-gather: off [requested on]`.
        let strings = BTreeMap::from([
            (0, "tx-scatter-gather".to_string()),
            (1, "tx-checksum-ipv4".to_string()),
            (2, "tx-fcoe-segmentation".to_string()),
        ]);
        let bits = |set: &[u32]| Bitset {
            set: set.iter().copied().collect(),
            ..Bitset::default()
        };
        let sets = FeatureSets {
            hw: bits(&[0, 1]),
            wanted: bits(&[0, 1]),
            active: bits(&[1]),
            nochange: bits(&[1]),
        };
        let f = combine_features(&strings, &sets);
        let state = |n: &str| *f.get(n).expect(n);
        assert_eq!(
            state("tx-scatter-gather"),
            FeatureState {
                active: false,
                wanted: true,
                fixed: false
            }
        );
        assert!(state("tx-checksum-ipv4").fixed);
        assert_eq!(
            state("tx-fcoe-segmentation"),
            FeatureState {
                active: false,
                wanted: false,
                fixed: true
            }
        );
    }

    #[test]
    fn requests_mark_nests_even_when_empty() {
        let msg = strset_request(ETH_SS_FEATURES).expect("request");
        let header = msg.attrs().iter().next().expect("header");
        assert_eq!(*header.nla_type().nla_type(), StrsetAttr::Header);
        assert!(*header.nla_type().nla_nested());
        assert!(header.nla_payload().as_ref().is_empty());
        let msg = features_request("eth0").expect("request");
        assert_eq!(*msg.cmd(), EthtoolMsg::FeaturesGet);
        let name = msg
            .attrs()
            .get_attr_handle()
            .get_nested_attributes::<HeaderAttr>(FeaturesAttr::Header)
            .expect("header")
            .get_attribute(HeaderAttr::DevName)
            .map(|a| attr_string(a.nla_payload().as_ref()));
        assert_eq!(name.as_deref(), Some("eth0"));
    }
}

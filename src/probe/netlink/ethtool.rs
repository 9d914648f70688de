//! ethtool over generic netlink: `FEATURES_GET` (the four feature bitsets of a device) and
//! `STRSET_GET` (the kernel's feature names), read as `ethtool -k` shows them.
//!
//! Message and attribute numbers: include/uapi/linux/ethtool_netlink_generated.h (and
//! ethtool_netlink.h); neli and libc define none of them.

use std::collections::BTreeMap;

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

mod bitset;

use bitset::{Bitset, parse_bitset};

use super::{Conn, NetlinkError, attr_string};
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
    Flags = 3,
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
    FeatureReader::open()?.read(ifname)
}

/// Reads the features of many devices over one generic netlink socket: the ethtool family and
/// the kernel's feature names are asked once, not once per device (a 200-port bridge is 200
/// devices).
pub struct FeatureReader {
    conn: Conn,
    family: u16,
    /// The `netdev-features` string set, by bit index, once the first device asked for it.
    names: Option<BTreeMap<u32, String>>,
}

impl FeatureReader {
    pub fn open() -> Result<FeatureReader, NetlinkError> {
        let mut conn = Conn::open(NlFamily::Generic, "ethtool features")?;
        let family = resolve_family(&mut conn, ETHTOOL_GENL_NAME)?;
        Ok(FeatureReader {
            conn,
            family,
            names: None,
        })
    }

    /// The features of `ifname`, as [`features`] reads them.
    pub fn read(&mut self, ifname: &str) -> Result<Features, NetlinkError> {
        let conn = &mut self.conn;
        conn.op = format!("ethtool features of {ifname}");
        // FEATURES_GET first: a missing device is reported by it (ENODEV).
        let request = features_request(ifname).map_err(|e| conn.build_error(e))?;
        let reply = conn
            .request::<u16, _, Genlmsghdr<EthtoolReply, FeaturesAttr>>(
                self.family,
                NlmF::empty(),
                request,
            )
            .map_err(|e| e.for_device(ifname))?;
        let sets = parse_features_reply(&reply.messages).map_err(|e| conn.malformed(e))?;
        let names = match self.names.take() {
            Some(names) => names,
            None => feature_names(conn, self.family)?,
        };
        let features = combine_features(&names, &sets);
        self.names = Some(names);
        Ok(features)
    }
}

/// Every feature name the kernel knows, by bit index (`STRSET_GET` of `netdev-features`).
fn feature_names(conn: &mut Conn, family: u16) -> Result<BTreeMap<u32, String>, NetlinkError> {
    let request = strset_request(ETH_SS_FEATURES).map_err(|e| conn.build_error(e))?;
    let reply = conn.request::<u16, _, Genlmsghdr<EthtoolReply, StrsetAttr>>(
        family,
        NlmF::empty(),
        request,
    )?;
    parse_strset_reply(&reply.messages, ETH_SS_FEATURES)
        .map_err(|e| conn.malformed(format!("netdev-features strings: {e}")))
}

/// The id of generic netlink family `name` (`CTRL_CMD_GETFAMILY`), asked on `conn` so the
/// receive timeout applies (neli's `NlRouter::resolve_genl_family` has none).
pub(super) fn resolve_family(conn: &mut Conn, name: &str) -> Result<u16, NetlinkError> {
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

/// `ETHTOOL_FLAG_COMPACT_BITSETS`: bitsets as u32 arrays, without a name per bit (the names come
/// once from the string set); a tenth of the reply, and far less to parse per device.
const ETHTOOL_FLAG_COMPACT_BITSETS: u32 = 1 << 0;

fn features_request(ifname: &str) -> Result<Genlmsghdr<EthtoolMsg, FeaturesAttr>, String> {
    let header = nest(
        FeaturesAttr::Header,
        &[
            attr(HeaderAttr::DevName, ifname)?,
            attr(HeaderAttr::Flags, ETHTOOL_FLAG_COMPACT_BITSETS)?,
        ],
    )?;
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

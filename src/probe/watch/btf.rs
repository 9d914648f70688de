//! Struct member offsets of the running kernel, from its BTF (`/sys/kernel/btf/vmlinux`,
//! present on every kernel built with `CONFIG_DEBUG_INFO_BTF`: Debian's 5.10, 6.1, 6.12 and
//! this project's host). The watch programs follow kernel pointers (an skb's shared info, the
//! zerocopy notification's socket, the socket's inode) whose offsets differ between kernels
//! (`sock.sk_socket` is at 640, 624 and 288 on the three Debian kernels), so they are read,
//! never written down.

use btf_rs::{Btf, Type};

/// The running kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// Why an offset could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("cannot read the kernel's BTF ({path}): {error}")]
    Unreadable { path: String, error: String },
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("struct {strukt} has no member {member} in the kernel's BTF")]
    NoMember { strukt: String, member: String },
    #[error("{strukt}.{member} is a bitfield, not a byte-addressed member")]
    Bitfield { strukt: String, member: String },
}

/// A parsed BTF, asked for byte offsets of members by path.
pub struct Offsets {
    btf: Btf,
}

impl Offsets {
    /// The running kernel's.
    pub fn kernel() -> Result<Offsets, BtfError> {
        Offsets::from_file(VMLINUX)
    }

    pub fn from_file(path: &str) -> Result<Offsets, BtfError> {
        let btf = Btf::from_file(path).map_err(|e| BtfError::Unreadable {
            path: path.to_string(),
            error: e.to_string(),
        })?;
        Ok(Offsets { btf })
    }

    /// The byte offset of `path` (`"cb"`, `"sk_socket"`, or nested: `"vfs_inode.i_ino"`) in
    /// `struct strukt`, looking through anonymous unions and structs as C does.
    pub fn of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let bits = self.bits_of(strukt, path)?;
        if bits % 8 != 0 {
            return Err(BtfError::Bitfield {
                strukt: strukt.to_string(),
                member: path.to_string(),
            });
        }
        Ok(bits / 8)
    }

    /// The bit offset of `path` in `struct strukt`: for a bitfield (`ubuf_info_msgzc.zerocopy`).
    pub fn bits_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut ty = self.named_struct(strukt)?;
        let mut total = 0u32;
        let mut within = strukt.to_string();
        for member in path.split('.') {
            let (bits, next) = self
                .member_in(&ty, member)
                .ok_or_else(|| BtfError::NoMember {
                    strukt: within.clone(),
                    member: member.to_string(),
                })?;
            total += bits;
            within = member.to_string();
            ty = next;
        }
        Ok(total)
    }

    /// Whether `struct strukt` has `path`.
    pub fn has(&self, strukt: &str, path: &str) -> bool {
        self.bits_of(strukt, path).is_ok()
    }

    fn named_struct(&self, name: &str) -> Result<Type, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| BtfError::NoStruct(name.to_string()))?;
        types
            .into_iter()
            .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
            .ok_or_else(|| BtfError::NoStruct(name.to_string()))
    }

    /// The bit offset of member `name` in `ty` (a struct or union) and the member's type with
    /// typedefs and qualifiers peeled; anonymous members are searched, their offset added.
    fn member_in(&self, ty: &Type, name: &str) -> Option<(u32, Type)> {
        let (Type::Struct(s) | Type::Union(s)) = ty else {
            return None;
        };
        for m in &s.members {
            let member_type = self.peel(self.btf.resolve_chained_type(m).ok()?);
            match self.btf.resolve_name(m) {
                Ok(n) if n == name => return Some((m.bit_offset(), member_type)),
                Ok(n) if !n.is_empty() => continue,
                _ => {}
            }
            // Anonymous: a struct or union whose members are the outer one's.
            if let Some((bits, t)) = self.member_in(&member_type, name) {
                return Some((m.bit_offset() + bits, t));
            }
        }
        None
    }

    /// `ty` without typedefs, const, volatile and restrict.
    fn peel(&self, mut ty: Type) -> Type {
        for _ in 0..16 {
            let inner = match &ty {
                Type::Typedef(t) => self.btf.resolve_chained_type(t),
                Type::Const(t) => self.btf.resolve_chained_type(t),
                Type::Volatile(t) => self.btf.resolve_chained_type(t),
                Type::Restrict(t) => self.btf.resolve_chained_type(t),
                _ => return ty,
            };
            match inner {
                Ok(t) => ty = t,
                Err(_) => return ty,
            }
        }
        ty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from this host's own BTF: offsets that have not moved on x86-64 for years (the
    /// research found the same on Debian's 5.10, 6.1 and 6.12), found through the anonymous
    /// unions of `sk_buff`.
    #[test]
    fn offsets_come_from_the_kernels_btf() {
        let Ok(btf) = Offsets::kernel() else {
            assert!(
                !std::path::Path::new(VMLINUX).exists(),
                "{VMLINUX} exists but did not parse"
            );
            return;
        };
        assert_eq!(btf.of("sk_buff", "sk"), Ok(24));
        assert_eq!(btf.of("sk_buff", "cb"), Ok(40));
        let vfs = btf
            .of("socket_alloc", "vfs_inode")
            .expect("socket_alloc.vfs_inode");
        let ino = btf.of("inode", "i_ino").expect("inode.i_ino");
        assert_eq!(btf.of("socket_alloc", "vfs_inode.i_ino"), Ok(vfs + ino));
        assert!(btf.of("sock", "sk_socket").is_ok_and(|o| o > 0));
        assert_eq!(
            btf.of("sk_buff", "no_such_member"),
            Err(BtfError::NoMember {
                strukt: "sk_buff".into(),
                member: "no_such_member".into()
            })
        );
        assert_eq!(
            btf.of("no_such_struct_zcd", "x"),
            Err(BtfError::NoStruct("no_such_struct_zcd".into()))
        );
    }
}

//! What `zcdoctor watch` (issue #17) needs from the running kernel. The design is in
//! docs/research/watch-design.md: BPF programs on kprobes at the copy sites and the zerocopy
//! completion, aggregating in kernel maps. Built so far: the struct offsets those programs read,
//! from the kernel's own BTF ([`btf`]).

pub mod btf;

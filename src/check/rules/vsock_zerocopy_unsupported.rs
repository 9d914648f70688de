//! `vsock-zerocopy-unsupported`: the vsock live probe's `SO_ZEROCOPY` (or its MSG_ZEROCOPY
//! send) was refused with EOPNOTSUPP: this kernel (before 6.7) or this transport has no
//! zerocopy for vsock.
//!
//! Reads the vsock probe (`vsock`) and the kernel release.
//! Explanation and fix text: checks/findings/vsock-zerocopy-unsupported.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::VsockProbe;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if let Step::Vsock(v) = at {
        refused(cx, v, out);
    }
}

fn refused(cx: &Context, v: &VsockProbe, out: &mut Findings) {
    let Some(error) = v.refused() else {
        return;
    };
    let release = &cx.ev.kernel.release;
    let sent: u64 = v.runs.iter().map(|r| r.messages).sum();
    let completions: u64 = v.runs.iter().map(|r| r.completions).sum();
    let after = if sent > 0 {
        format!(
            "; its {sent} MSG_ZEROCOPY sends went through as plain copies with {completions} completions"
        )
    } else {
        String::new()
    };
    out.raise(
        Code::VsockZerocopyUnsupported,
        format!(
            "{}: this kernel ({release}) has no MSG_ZEROCOPY for vsock: {error}{after}",
            v.target()
        ),
        json!({
            "target": v.target(),
            "kernel": release,
            "error": error,
            "messages": sent,
            "completions": completions,
        }),
        vec![
            format!(
                "Run Linux 6.7 or later on the sending side (virtio, vhost or loopback transport); this one is {release}."
            ),
            "Until then, send plainly on vsock sockets (no SO_ZEROCOPY, no MSG_ZEROCOPY): the sends are copied anyway and no completion comes.".to_string(),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::vsock::{probe, raised, run};
    use crate::evidence::{Fact, OsError};

    #[test]
    fn refused_so_zerocopy_is_a_blocker_and_accepted_is_not() {
        let mut p = probe(vec![run(4096, 100, 100, 0)]);
        p.so_zerocopy = Fact::Failed(OsError::new(
            "setsockopt(SOL_SOCKET, SO_ZEROCOPY, 1)",
            nix::errno::Errno::EOPNOTSUPP,
        ));
        p.runs[0].completions = 0;
        let f = raised(p, Code::VsockZerocopyUnsupported);
        assert_eq!(f.len(), 1);
        assert!(f[0].summary.contains("vsock:1:5201"), "{}", f[0].summary);
        assert!(f[0].summary.contains("100 MSG_ZEROCOPY sends"), "{}", f[0].summary);
        assert!(raised(probe(vec![run(4096, 100, 100, 0)]), Code::VsockZerocopyUnsupported).is_empty());
    }

    #[test]
    fn another_setsockopt_error_is_not_called_unsupported() {
        let mut p = probe(Vec::new());
        p.so_zerocopy = Fact::Failed(OsError::new("setsockopt", nix::errno::Errno::EPERM));
        assert!(raised(p, Code::VsockZerocopyUnsupported).is_empty());
    }
}

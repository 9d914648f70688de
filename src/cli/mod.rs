//! What only the command line does: the progress line, and Ctrl-C.

pub mod progress;

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs a SIGINT handler that sets the returned flag (once per process; later calls return
/// the same flag). The handler resets itself, so a second Ctrl-C ends the process the usual way.
pub fn install_interrupt_handler() -> &'static AtomicBool {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let action = SigAction::new(
            SigHandler::Handler(on_sigint),
            SaFlags::SA_RESETHAND | SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe. If the
        // call fails, Ctrl-C keeps its default action; nothing to recover.
        let _ = unsafe { sigaction(Signal::SIGINT, &action) };
    });
    &INTERRUPTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigint_sets_the_interrupt_flag() {
        let flag = install_interrupt_handler();
        assert!(std::ptr::eq(flag, install_interrupt_handler()));
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT).expect("raise");
        assert!(flag.load(Ordering::SeqCst));
    }
}

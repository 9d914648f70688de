//! SIGINT, SIGTERM and SIGHUP (Ctrl-C, timeout(1), systemd, CI cancellation) set one stop flag:
//! a live probe or a sink stops within a second and still reports. A second signal ends the
//! process at once, the usual way out of anything that does not stop.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;

/// Registers the handlers (once) and returns the flag they set.
pub fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Order matters: the conditional exit sees the flag before this signal sets it, so the
        // first signal only sets it and the second exits (status 130, as a shell reports ^C).
        // A failure leaves the signal's default action in place, which still ends the process.
        let _ = flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop));
        let _ = flag::register(signal, Arc::clone(&stop));
    }
    stop
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_signal_sets_the_stop_flag() {
        let stop = stop_flag();
        assert!(!stop.load(Ordering::SeqCst));
        // SIGHUP, not SIGINT: a second delivery of the same signal would end the test process.
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).expect("raise");
        assert!(stop.load(Ordering::SeqCst));
    }
}

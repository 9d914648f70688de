//! The live probe's progress: one line on stderr, redrawn on each tick the probe reports (at
//! most every 200 ms) and cleared when the probe is done.

use std::io::Write;

use zcdoctor::probe::live::Tick;

/// A single updating line on a terminal; draws nothing when disabled.
pub struct ProgressLine<W: Write> {
    out: Option<W>,
    shown: bool,
}

impl ProgressLine<std::io::Stderr> {
    /// On stderr when `enabled` (set it when stderr is a terminal).
    pub fn stderr(enabled: bool) -> Self {
        ProgressLine::new(enabled.then(std::io::stderr))
    }
}

impl<W: Write> ProgressLine<W> {
    pub fn new(out: Option<W>) -> Self {
        ProgressLine { out, shown: false }
    }

    /// Redraws the line for `tick`.
    pub fn tick(&mut self, tick: &Tick) {
        if let Some(out) = self.out.as_mut() {
            let _ = write!(out, "\r\x1b[K{}", line(tick));
            let _ = out.flush();
            self.shown = true;
        }
    }

    /// Erases the line, if one was drawn.
    pub fn clear(&mut self) {
        if let (Some(out), true) = (self.out.as_mut(), self.shown) {
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
            self.shown = false;
        }
    }
}

impl<W: Write> Drop for ProgressLine<W> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `live probe: gso zerocopy 0.6s 9000 sends 12.34 Gbit/s`
fn line(t: &Tick) -> String {
    let secs = t.elapsed.as_secs_f64();
    let gbit = if secs > 0.0 {
        t.bytes as f64 * 8.0 / secs / 1e9
    } else {
        0.0
    };
    format!(
        "live probe: {} {} {secs:.1}s {} sends {gbit:.2} Gbit/s",
        t.pattern, t.phase, t.sends
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zcdoctor::evidence::RunPattern;
    use zcdoctor::probe::live::PhaseKind;

    fn tick() -> Tick {
        Tick {
            pattern: RunPattern::Gso,
            phase: PhaseKind::Zerocopy,
            elapsed: Duration::from_millis(600),
            bytes: 750_000_000,
            sends: 9000,
        }
    }

    #[test]
    fn draws_and_clears_one_line() {
        let mut out = Vec::new();
        {
            let mut p = ProgressLine::new(Some(&mut out));
            p.clear();
            p.tick(&tick());
            p.tick(&tick());
            p.clear();
            p.clear();
        }
        let drawn = "\r\x1b[Klive probe: gso zerocopy 0.6s 9000 sends 10.00 Gbit/s";
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            format!("{drawn}{drawn}\r\x1b[K")
        );
    }

    #[test]
    fn clears_on_drop_and_draws_nothing_when_disabled() {
        let mut out = Vec::new();
        ProgressLine::new(Some(&mut out)).tick(&tick());
        assert!(
            String::from_utf8(out)
                .expect("utf-8")
                .ends_with("Gbit/s\r\x1b[K")
        );
        let mut off = ProgressLine::<Vec<u8>>::new(None);
        off.tick(&tick());
        off.clear();
    }
}

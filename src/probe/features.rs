//! The `features` probe: offload features of every device of the stack, as `ethtool -k` shows
//! them (ethtool netlink `FEATURES_GET`).

use super::{Context, GatherError, Outcome, Probe, netlink};
use crate::evidence::{Evidence, ProbeName, ProbeState};

pub struct FeaturesProbe;

impl Probe for FeaturesProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Features
    }
    fn reads(&self) -> &'static str {
        "ethtool netlink FEATURES_GET of every device of the stack (hw, wanted, active, fixed)"
    }
    fn privileges(&self) -> &'static str {
        "none"
    }
    fn gather(&self, _: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        let mut errors = Vec::new();
        // Ports a bridge does not send this traffic to are off the path: not read.
        let off = crate::evidence::off_path(&ev.stack);
        // One socket for every device (a bridge's ports are many).
        let mut reader = netlink::FeatureReader::open().map_err(|e| e.to_string());
        for dev in ev.stack.iter_mut().filter(|d| !off.contains(&d.name)) {
            let read = match &mut reader {
                Ok(reader) => reader.read(&dev.name).map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            match read {
                Ok(f) => dev.features = Some(f),
                Err(e) => errors.push(format!("{}: {e}", dev.name)),
            }
        }
        Ok(if errors.is_empty() {
            Outcome::ok("ethtool netlink FEATURES_GET")
        } else {
            Outcome::new(ProbeState::Error, errors.join("; "))
        })
    }
}

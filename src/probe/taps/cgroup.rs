//! What a tap owner's cgroup paths say about it: the path to report, the systemd unit
//! (`lldpd.service`) and a container id (`docker:<64 hex>`), for the layouts of docker,
//! containerd, CRI-O, podman (systemd and cgroupfs drivers), kubepods, LXC and systemd-nspawn.

use procfs::ProcessCGroups;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct CgroupSummary {
    pub(crate) path: Option<String>,
    pub(crate) unit: Option<String>,
    pub(crate) container: Option<String>,
}

/// From a process's `/proc/PID/cgroup`.
pub(crate) fn of_process(cgroups: &ProcessCGroups) -> CgroupSummary {
    let paths: Vec<(bool, String)> = cgroups
        .0
        .iter()
        .map(|c| {
            let unified = c.hierarchy == 0 && c.controllers.is_empty();
            let named_systemd = c.controllers.iter().any(|x| x == "name=systemd");
            (unified || named_systemd, c.pathname.clone())
        })
        .collect();
    summarize(&paths)
}

/// From the process's cgroup lines (`(is unified or name=systemd, path)`): the path to report
/// (the unified / systemd one when it is not `/`, else the first non-root path), the systemd
/// unit and a container id found in any of them.
fn summarize(paths: &[(bool, String)]) -> CgroupSummary {
    let path = paths
        .iter()
        .find(|(primary, p)| *primary && p != "/")
        .or_else(|| paths.iter().find(|(_, p)| p != "/"))
        .or_else(|| paths.first())
        .map(|(_, p)| p.clone());
    let unit = path
        .as_deref()
        .and_then(unit_from_cgroup)
        .or_else(|| paths.iter().find_map(|(_, p)| unit_from_cgroup(p)));
    let container = path
        .as_deref()
        .and_then(container_from_cgroup)
        .or_else(|| paths.iter().find_map(|(_, p)| container_from_cgroup(p)));
    CgroupSummary {
        path,
        unit,
        container,
    }
}

/// The last path component that is a systemd unit (`.service` or `.scope`).
fn unit_from_cgroup(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_string)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A container id (`runtime:id`) from a cgroup path.
fn container_from_cgroup(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, comp) in parts.iter().enumerate().rev() {
        let scoped = comp.strip_suffix(".scope").unwrap_or(comp);
        for (prefix, runtime) in [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
        ] {
            if let Some(id) = scoped.strip_prefix(prefix)
                && is_container_id(id)
            {
                return Some(format!("{runtime}:{id}"));
            }
        }
        if is_container_id(comp) {
            let runtime = if parts.iter().take(i).any(|p| p.starts_with("kubepods")) {
                "kubepods"
            } else if i > 0 && parts[i - 1] == "docker" {
                "docker"
            } else if parts.iter().take(i).any(|p| p.contains("libpod")) {
                "podman"
            } else {
                "container"
            };
            return Some(format!("{runtime}:{comp}"));
        }
        if let Some(name) = comp.strip_prefix("lxc.payload.") {
            return Some(format!("lxc:{name}"));
        }
        if i > 0 && parts[i - 1] == "lxc" {
            return Some(format!("lxc:{comp}"));
        }
        if i > 0
            && parts[i - 1] == "machine.slice"
            && let Some(name) = comp
                .strip_prefix("machine-")
                .and_then(|n| n.strip_suffix(".scope"))
        {
            return Some(format!("machine:{name}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn finds_units() {
        assert_eq!(
            unit_from_cgroup("/system.slice/lldpd.service").as_deref(),
            Some("lldpd.service")
        );
        assert_eq!(
            unit_from_cgroup("/system.slice/foo.service/payload").as_deref(),
            Some("foo.service")
        );
        assert_eq!(
            unit_from_cgroup("/user.slice/user-0.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(unit_from_cgroup("/"), None);
    }

    #[test]
    fn finds_containers() {
        let id = ID;
        assert_eq!(
            container_from_cgroup(&format!("/system.slice/docker-{id}.scope")),
            Some(format!("docker:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/docker/{id}")),
            Some(format!("docker:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{id}.scope"
            )),
            Some(format!("containerd:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/kubepods/burstable/pod1234/{id}")),
            Some(format!("kubepods:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/system.slice/crio-{id}.scope")),
            Some(format!("cri-o:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/machine.slice/libpod-{id}.scope/container")),
            Some(format!("podman:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/libpod_parent/{id}")),
            Some(format!("podman:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/other/{id}")),
            Some(format!("container:{id}"))
        );
        assert_eq!(
            container_from_cgroup("/lxc.payload.web1/init.scope"),
            Some("lxc:web1".to_string())
        );
        assert_eq!(
            container_from_cgroup("/lxc/web2"),
            Some("lxc:web2".to_string())
        );
        assert_eq!(
            container_from_cgroup("/machine.slice/machine-deb12.scope"),
            Some("machine:deb12".to_string())
        );
        assert_eq!(container_from_cgroup("/system.slice/lldpd.service"), None);
        assert_eq!(
            container_from_cgroup("/process_api/aba01ea505c9b582dc55e007d2c77937"),
            None
        );
    }

    #[test]
    fn summarizes_cgroup_lines() {
        let s = summarize(&[
            (true, "/".to_string()),
            (false, "/process_api/x".to_string()),
        ]);
        assert_eq!(s.path.as_deref(), Some("/process_api/x"));
        assert_eq!(s.unit, None);
        assert_eq!(s.container, None);

        // The unified path is preferred; unit and container are taken from any line.
        let s = summarize(&[
            (false, format!("/docker/{ID}")),
            (true, "/system.slice/lldpd.service".to_string()),
        ]);
        assert_eq!(s.path.as_deref(), Some("/system.slice/lldpd.service"));
        assert_eq!(s.unit.as_deref(), Some("lldpd.service"));
        assert_eq!(s.container, Some(format!("docker:{ID}")));

        assert_eq!(
            summarize(&[(true, "/".to_string())]).path.as_deref(),
            Some("/")
        );
        assert_eq!(summarize(&[]), CgroupSummary::default());
    }

    #[test]
    fn reads_this_process() {
        let me = procfs::process::Process::myself().expect("own process");
        let s = of_process(&me.cgroups().expect("own cgroups"));
        assert!(s.path.is_some());
    }
}

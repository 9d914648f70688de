//! `ansible-playbook` with contrib/ansible over an inventory of local hosts, each in its own
//! namespace: the fleet summary of their reports.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Netns, ZCDOCTOR};
use crate::{TmpDir, root, text, tool};
use serde_json::Value;

fn ansible_playbook_over_local_hosts() {
    let playbook = tool("ansible-playbook");
    let started = Instant::now();
    let dir = TmpDir::new("ansible");
    let clean = Netns::new("ansa");
    clean.ifb("ifbz", "198.18.0.1/24");
    let tapped = Netns::new("ansb");
    tapped.ifb("ifbz", "198.18.0.1/24");
    let _tap = tapped.tap_socket(Some("ifbz"), false);
    let d = dir.0.display();
    let inventory = format!(
        "[probe]\n\
         zcdhosta zcdoctor_netns={} zcdoctor_fact_path={d}/facts-a zcdoctor_remote_report={d}/remote-a.json\n\
         zcdhostb zcdoctor_netns={} zcdoctor_fact_path={d}/facts-b zcdoctor_remote_report={d}/remote-b.json\n\
         [probe:vars]\n\
         ansible_connection=local\n\
         ansible_python_interpreter=/usr/bin/python3\n\
         zcdoctor_interface=ifbz\n\
         zcdoctor_bin={ZCDOCTOR}\n",
        clean.name, tapped.name
    );
    let inv = dir.0.join("inventory.ini");
    std::fs::write(&inv, inventory).expect("inventory");
    let out = Command::new(playbook)
        .arg("-i")
        .arg(&inv)
        .arg(root().join("contrib/ansible/zcdoctor.yml"))
        .arg("-e")
        .arg(format!(
            "zcdoctor_reports_dir={d}/reports zcdoctor_controller_bin={ZCDOCTOR}"
        ))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", dir.0.join("tmp-local"))
        .env("ANSIBLE_REMOTE_TEMP", dir.0.join("tmp-remote"))
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env("HOME", &dir.0)
        .output()
        .expect("ansible-playbook");
    let log = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "ansible-playbook failed:\n{log}");
    let fleet = std::fs::read_to_string(dir.0.join("reports/FLEET.md")).expect("FLEET.md");
    assert!(fleet.contains("2 reports read, 0 unreadable"), "{fleet}");
    assert!(
        fleet.contains("| zerocopy yes (predicted) | 1 |"),
        "{fleet}"
    );
    assert!(fleet.contains("| zerocopy no (predicted) | 1 |"), "{fleet}");
    assert!(
        fleet.contains("| blocker | `tap-forces-copy` | 1 |"),
        "{fleet}"
    );
    for h in ["zcdhosta", "zcdhostb"] {
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.0.join(format!("reports/{h}.json"))).expect("report"),
        )
        .expect("json");
        assert_eq!(r["interface"], "ifbz");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

crate::cases!(privileged: [ansible_playbook_over_local_hosts needs ["ansible-playbook"]]);

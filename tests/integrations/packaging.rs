//! What a package installs, in the tools that read it: `systemd-analyze verify` on the units,
//! `man -l` on the man page, the shell completions, and the .deb built by cargo-deb.

use std::process::Command;

use crate::common::ZCDOCTOR;
use crate::{TmpDir, root, text, tool, zcdoctor};

fn systemd_units_verify() {
    let analyze = tool("systemd-analyze");
    // The units name /usr/bin/zcdoctor, which verify requires to exist: check copies that name
    // the binary under test instead.
    let dir = TmpDir::new("units");
    for name in ["zcdoctor-textfile.service", "zcdoctor-textfile.timer"] {
        let unit =
            std::fs::read_to_string(root().join("contrib/systemd").join(name)).expect("unit");
        assert!(
            !unit.contains("--target"),
            "{name}: the timer must never send traffic"
        );
        std::fs::write(
            dir.0.join(name),
            unit.replace("/usr/bin/zcdoctor", ZCDOCTOR),
        )
        .expect("write");
    }
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(dir.0.join("zcdoctor-textfile.service"))
        .arg(dir.0.join("zcdoctor-textfile.timer"))
        .output()
        .expect("systemd-analyze");
    let all = text(&out.stdout) + &text(&out.stderr);
    if !out.status.success() && all.contains("Failed to") && all.contains("bus") {
        eprintln!("note: skipped: systemd-analyze cannot run here: {all}");
        return;
    }
    assert!(
        out.status.success() && all.trim().is_empty(),
        "systemd-analyze verify: {all}"
    );
    let timer = std::fs::read_to_string(root().join("contrib/systemd/zcdoctor-textfile.timer"))
        .expect("timer");
    assert!(timer.contains("OnCalendar=*:0/15"), "{timer}");
}

fn man_page_renders() {
    let man = tool("man");
    let dir = TmpDir::new("man");
    let page = dir.0.join("zcdoctor.1");
    let out = zcdoctor(&["man"]);
    assert!(out.status.success());
    std::fs::write(&page, &out.stdout).expect("write");
    let out = Command::new(man)
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man");
    let page = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "man warnings: {}", text(&out.stderr));
    for word in ["zcdoctor", "SYNOPSIS", "fleet", "completions"] {
        assert!(page.contains(word), "{word} not in:\n{page}");
    }
}

fn completions_generate() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = zcdoctor(&["completions", shell]);
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}");
        assert!(text(&out.stdout).contains("fleet"), "{shell}");
    }
    let out = zcdoctor(&["completions", "bash"]);
    let dir = TmpDir::new("compl");
    let f = dir.0.join("zcdoctor.bash");
    std::fs::write(&f, &out.stdout).expect("write");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&f)
        .output()
        .expect("bash");
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
    let bad = zcdoctor(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

fn deb_builds_when_cargo_deb_is_present() {
    let out = Command::new("bash")
        .arg(root().join("contrib/deb/build.sh"))
        .current_dir(root())
        .output()
        .expect("build.sh");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let deb = text(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let list = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .expect("dpkg-deb");
    let files = text(&list.stdout);
    for want in [
        "./usr/bin/zcdoctor",
        "./usr/share/man/man1/zcdoctor.1.gz",
        "./usr/share/bash-completion/completions/zcdoctor",
        "./lib/systemd/system/zcdoctor-textfile.timer",
    ] {
        assert!(files.contains(want), "{want} not in {deb}:\n{files}");
    }
}

crate::cases!(
    privileged: [],
    plain: [
        systemd_units_verify needs ["systemd-analyze"],
        man_page_renders needs ["man"],
        completions_generate,
        deb_builds_when_cargo_deb_is_present needs ["cargo-deb"],
    ]
);

//! The package azd deploys: azure.yaml's service, the toolchain, the binary check, the staged folder.

use super::*;

#[test]
fn azure_yaml_needs_no_alpha_switch_and_an_azd_that_keeps_the_package_and_the_archive() {
    let azure_yaml = read("azure.yaml");
    assert!(
        !azure_yaml.contains("language: custom"),
        "`language: custom` needs azd's alpha switch alpha.language.custom"
    );
    // The Python packager deploys `dist` as it is, provided remote build is off (it defaults to on for Python).
    assert!(azure_yaml.contains("language: python") && azure_yaml.contains("remoteBuild: false"));
    assert!(azure_yaml.contains("host: function"));
    assert!(azure_yaml.contains("dist: target/azd-package"));
    assert!(
        azure_yaml.contains(&format!("azd: \">= {MINIMUM_AZD}\"")),
        "azure.yaml does not require azd {MINIMUM_AZD} or newer"
    );
    // Every hook in both forms, each running the same Python hook.
    for hook in ["package", "preprovision", "postdeploy"] {
        assert!(
            azure_yaml.contains(&format!("run: sh scripts/hook.sh {hook}")),
            "no posix {hook}"
        );
        assert!(
            azure_yaml.contains(&format!("run: \"& ./scripts/hook.ps1 {hook}\"")),
            "no pwsh {hook}"
        );
    }
    assert_eq!(azure_yaml.matches("shell: sh").count(), 3);
    assert_eq!(azure_yaml.matches("shell: pwsh").count(), 3);
    // No hook provisions: the event subscription is not a second provisioning pass.
    assert!(!azure_yaml.contains("azd provision") && !azure_yaml.contains("SUBSCRIBE_TO_EVENTS"));
}

#[test]
fn the_package_leaves_the_templates_and_azds_environments_out() {
    let ignored: BTreeSet<String> = read(".funcignore")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for path in ["infra/", "azure.yaml", ".azure/", "scripts/", "rust-toolchain.toml"] {
        assert!(ignored.contains(path), ".funcignore does not leave out {path}");
    }
}

#[test]
fn the_toolchain_is_pinned_to_one_release() {
    let pin = read("rust-toolchain.toml");
    let channel = pin
        .lines()
        .find_map(|line| line.strip_prefix("channel = \""))
        .expect("rust-toolchain.toml names no channel")
        .trim_end_matches('"');
    assert!(
        channel.split('.').count() == 3 && channel.split('.').all(|part| part.parse::<u32>().is_ok()),
        "the toolchain is pinned to {channel}, not to one release"
    );
    assert!(
        pin.contains("\"x86_64-unknown-linux-gnu\""),
        "the package's target is not in the toolchain"
    );
}

/// A stand-in ELF file: a header and the section headers of `.dynstr` and `.gnu.version_r` needing `versions` of
/// libc.so.6, for `machine`.
fn elf(machine: u16, versions: &[&str]) -> Vec<u8> {
    let mut strings = b"\0libc.so.6\0".to_vec();
    let names: Vec<u32> = versions
        .iter()
        .map(|version| {
            let at = strings.len() as u32;
            strings.extend_from_slice(version.as_bytes());
            strings.push(0);
            at
        })
        .collect();
    let mut needed = Vec::new();
    // Elf64_Verneed: version, count, file, aux, next.
    needed.extend_from_slice(&1u16.to_le_bytes());
    needed.extend_from_slice(&(versions.len() as u16).to_le_bytes());
    needed.extend_from_slice(&1u32.to_le_bytes());
    needed.extend_from_slice(&16u32.to_le_bytes());
    needed.extend_from_slice(&0u32.to_le_bytes());
    for (i, name) in names.iter().enumerate() {
        // Elf64_Vernaux: hash, flags, other, name, next.
        needed.extend_from_slice(&0u32.to_le_bytes());
        needed.extend_from_slice(&0u16.to_le_bytes());
        needed.extend_from_slice(&(i as u16 + 2).to_le_bytes());
        needed.extend_from_slice(&name.to_le_bytes());
        let next: u32 = if i + 1 < names.len() { 16 } else { 0 };
        needed.extend_from_slice(&next.to_le_bytes());
    }
    let strings_at = 64u64;
    let needed_at = strings_at + strings.len() as u64;
    let sections_at = needed_at + needed.len() as u64;
    let mut file = vec![0u8; 64];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // 64-bit
    file[5] = 1; // little-endian
    file[6] = 1;
    file[16..18].copy_from_slice(&2u16.to_le_bytes()); // an executable
    file[18..20].copy_from_slice(&machine.to_le_bytes());
    file[0x28..0x30].copy_from_slice(&sections_at.to_le_bytes());
    file[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    file[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
    file.extend_from_slice(&strings);
    file.extend_from_slice(&needed);
    let section = |kind: u32, offset: u64, size: u64, link: u32, info: u32| {
        let mut header = Vec::new();
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&kind.to_le_bytes());
        header.extend_from_slice(&[0u8; 16]);
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        header.extend_from_slice(&link.to_le_bytes());
        header.extend_from_slice(&info.to_le_bytes());
        header.extend_from_slice(&[0u8; 16]);
        header
    };
    file.extend(section(0, 0, 0, 0, 0));
    file.extend(section(3, strings_at, strings.len() as u64, 0, 0));
    file.extend(section(0x6fff_fffe, needed_at, needed.len() as u64, 1, 1));
    file
}

#[test]
fn the_binary_check_accepts_only_an_x86_64_executable_within_glibc_2_28() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, bytes: &[u8], mode: u32| {
        let path = dir.path().join(name);
        write_file(&path, bytes, mode);
        hook(&["check-binary", path.to_str().unwrap()], &World::none())
    };
    let accepted = check("within", &elf(62, &["GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.28"]), 0o755);
    assert!(accepted.status.success(), "{}", accepted.text());
    assert!(
        accepted.stdout().contains("glibc symbol versions up to 2.28"),
        "{}",
        accepted.text()
    );

    let too_new = check("too-new", &elf(62, &["GLIBC_2.2.5", "GLIBC_2.34"]), 0o755);
    assert!(!too_new.status.success());
    assert!(
        too_new
            .stderr()
            .contains(&format!("newer than {GLIBC_FLOOR}: GLIBC_2.34")),
        "{}",
        too_new.text()
    );

    let arm = check("arm64", &elf(183, &["GLIBC_2.17"]), 0o755);
    assert!(
        !arm.status.success() && arm.stderr().contains("not x86-64"),
        "{}",
        arm.text()
    );

    #[cfg(unix)]
    {
        let plain = check("plain", &elf(62, &["GLIBC_2.17"]), 0o644);
        assert!(
            !plain.status.success() && plain.stderr().contains("not executable"),
            "{}",
            plain.text()
        );
    }

    let script = check("script", b"#!/bin/sh\n", 0o755);
    assert!(
        !script.status.success() && script.stderr().contains("not an ELF file"),
        "{}",
        script.text()
    );
}

#[test]
fn the_package_holds_what_funcignore_keeps_with_an_executable_handler_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("handler");
    // Written without the execute bit: staging sets it.
    write_file(&binary, &elf(62, &["GLIBC_2.2.5", "GLIBC_2.28"]), 0o644);
    let stage = dir.path().join("azd-package");
    let world = World::none()
        .with_env("HANDLER_BINARY", binary.to_str().unwrap())
        .with_env("HANDLER_PACKAGE_DIR", stage.to_str().unwrap());
    let packaged = hook(&["package"], &world);
    assert!(packaged.status.success(), "{}", packaged.text());
    let mut staged = BTreeSet::new();
    for entry in walk_files(&stage) {
        staged.insert(entry.strip_prefix(&stage).unwrap().to_string_lossy().replace('\\', "/"));
    }
    let (_, triggers) = function_bindings();
    let mut expected: BTreeSet<String> = triggers
        .iter()
        .map(|(name, _)| format!("{name}/function.json"))
        .collect();
    expected.insert("host.json".to_owned());
    expected.insert("handler".to_owned());
    assert_eq!(staged, expected, "the staged package (left) and the app (right)");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(stage.join("handler")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "the staged handler is not executable: {mode:o}");
    }

    // A binary the host's image could not start is never staged as a success.
    write_file(&binary, &elf(62, &["GLIBC_2.34"]), 0o755);
    let refused = hook(&["package"], &world);
    assert!(!refused.status.success(), "{}", refused.text());
    assert!(refused.stderr().contains("GLIBC_2.34"), "{}", refused.text());
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk_files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

//! `hexz keygen --x25519`, `store --encrypt` and the readers' `--identity`
//! and `--passphrase-file` / HEXZ_PASSPHRASE end to end (format 1.5): round
//! trips, a fine-tune under its base's key, exit codes and messages for a
//! missing or wrong key, nothing written when refused, signing without the key.

use std::process::{Command, Output};

fn hexz(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    hexz_env(args, None)
}

fn hexz_env(args: &[&dyn AsRef<std::ffi::OsStr>], passphrase: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hexz"));
    cmd.args(args.iter().map(|a| a.as_ref())).env_remove("HEXZ_PASSPHRASE");
    if let Some(p) = passphrase {
        cmd.env("HEXZ_PASSPHRASE", p);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn encrypted_store_extract_chain_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("data.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();

    // An identity, its recipient; the CI job that stores needs only the recipient.
    let (id, id_pub) = (d.join("me.key"), d.join("me.pub"));
    let o = ok(hexz(&[&"keygen", &"--x25519", &id, &id_pub]));
    let recipient = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(std::fs::read_to_string(&id_pub).unwrap().trim(), recipient);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&id).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let arc = d.join("a.hxz");
    ok(hexz(&[&"-q", &"store", &src, &arc, &"--encrypt", &"--recipient", &recipient]));
    let out = d.join("out.bin");
    ok(hexz(&[&"-q", &"--identity", &id, &"extract", &arc, &out]));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let o = ok(hexz(&[&"--identity", &id, &"inspect", &"--json", &arc]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], "1.5");
    assert_eq!(v["encryption"]["stanzas"][0], "x25519");
    ok(hexz(&[&"-q", &"--identity", &id, &"verify", &arc]));

    // No key, another identity: exit 1 with a message naming the problem, no output left.
    let missing = d.join("missing.bin");
    let o = hexz(&[&"extract", &arc, &missing]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("encrypted"), "{}", stderr(&o));
    assert!(!missing.exists());
    let other = d.join("other.key");
    ok(hexz(&[&"-q", &"keygen", &"--x25519", &other]));
    let o = hexz(&[&"--identity", &other, &"extract", &arc, &missing]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong key"), "{}", stderr(&o));
    assert!(!missing.exists());
    // inspect without any key shows what the format leaves visible, marked
    // locked; with a wrong key it is refused like every reader.
    let o = ok(hexz(&[&"inspect", &"--json", &arc]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["locked"], true);
    assert_eq!(v["format_version"], "1.5");
    assert_eq!(v["original_size"], bytes.len());
    assert_eq!(v["encryption"]["stanzas"][0], "x25519");
    assert!(v.get("tensors").is_none() && v.get("metadata").is_none() && v.get("source_format").is_none(), "{v}");
    let o = ok(hexz(&[&"inspect", &arc]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("are encrypted"));
    let o = hexz(&[&"--identity", &other, &"inspect", &arc]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong key"), "{}", stderr(&o));
    // A recipient given as an identity: told so.
    let o = hexz(&[&"--identity", &id_pub, &"extract", &arc, &missing]);
    assert!(stderr(&o).contains("recipient"), "{}", stderr(&o));

    // Passphrase from the environment, then from a file; a wrong one refused.
    let parc = d.join("p.hxz");
    ok(hexz_env(&[&"-q", &"store", &src, &parc, &"--encrypt", &"--argon2-mib", &"8"], Some("hunter2 hunter2")));
    ok(hexz_env(&[&"-q", &"extract", &parc, &d.join("p1.bin")], Some("hunter2 hunter2")));
    assert_eq!(std::fs::read(d.join("p1.bin")).unwrap(), bytes);
    let pw = d.join("pw");
    std::fs::write(&pw, "hunter2 hunter2\n").unwrap();
    ok(hexz(&[&"-q", &"--passphrase-file", &pw, &"extract", &parc, &d.join("p2.bin")]));
    assert_eq!(std::fs::read(d.join("p2.bin")).unwrap(), bytes);
    let o = hexz_env(&[&"extract", &parc, &missing], Some("hunter3"));
    assert!(stderr(&o).contains("wrong key"), "{}", stderr(&o));
    // --encrypt with nothing to encrypt for: a usage error.
    assert_eq!(hexz(&[&"store", &src, &d.join("n.hxz"), &"--encrypt"]).status.code(), Some(2));

    // A fine-tune against the encrypted base: encrypted under its key without asking.
    let mut fine = bytes.clone();
    for b in fine[1_000_000..1_100_000].iter_mut() {
        *b ^= 0x5a;
    }
    let fine_src = d.join("fine.bin");
    std::fs::write(&fine_src, &fine).unwrap();
    let child = d.join("child.hxz");
    ok(hexz(&[&"-q", &"--identity", &id, &"store", &fine_src, &child, &"--base", &arc]));
    assert!(std::fs::metadata(&child).unwrap().len() < 1_000_000);
    ok(hexz(&[&"-q", &"--identity", &id, &"extract", &child, &d.join("fine.out")]));
    assert_eq!(std::fs::read(d.join("fine.out")).unwrap(), fine);
    assert_eq!(hexz(&[&"extract", &child, &missing]).status.code(), Some(1));
    // Asking for another key for it: refused before anything is written.
    let o = hexz(&[
        &"--identity",
        &id,
        &"store",
        &fine_src,
        &d.join("c2.hxz"),
        &"--base",
        &arc,
        &"--encrypt",
        &"-r",
        &recipient,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!d.join("c2.hxz").exists());

    // Signing needs no key; a reader with the key and a trusted key reads it.
    let (sk, pk) = (d.join("s.key"), d.join("s.pub"));
    ok(hexz(&[&"-q", &"keygen", &sk, &pk]));
    ok(hexz(&[&"-q", &"sign", &arc, &"--key", &sk]));
    ok(hexz(&[&"-q", &"--identity", &id, &"--trusted-key", &pk, &"extract", &arc, &d.join("s.bin"), &"--force"]));
    assert_eq!(std::fs::read(d.join("s.bin")).unwrap(), bytes);
    ok(hexz(&[&"-q", &"verify", &arc, &"--key", &pk, &"--quick", &"--identity", &id]));
    // The archive's bytes do not hold the source's.
    let stored = std::fs::read(&arc).unwrap();
    assert!(!stored.windows(64).any(|w| w == &bytes[500_000..500_064]));
}

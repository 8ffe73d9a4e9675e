//! `hexz keygen`, `sign`, `verify --key` and `--trusted-key` end to end
//! (format 1.4): exit codes, messages, key permissions, and signatures
//! removed giving back the unsigned bytes.

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn hexz(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hexz")).args(args.iter().map(|a| a.as_ref())).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn keygen_sign_verify_and_trusted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("data.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    let arc = d.join("a.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &arc]).status.success());
    let unsigned = std::fs::read(&arc).unwrap();
    let (k1, p1, k2, p2) = (d.join("k1.key"), d.join("k1.pub"), d.join("k2.key"), d.join("k2.pub"));
    for (k, p) in [(&k1, &p1), (&k2, &p2)] {
        let o = hexz(&[&"keygen", k, p]);
        assert!(o.status.success(), "{}", stderr(&o));
        // (Unix permission bits: Windows has none to set or check.)
        #[cfg(unix)]
        assert_eq!(std::fs::metadata(k).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(hexz(&[&"keygen", &k1, &p1]).status.code(), Some(1), "keygen overwrote a key");

    // Unsigned: a trusted key refuses it; verify --key reports it (exit 3).
    let o = hexz(&[&"--trusted-key", &p1, &"inspect", &arc]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not signed"), "{}", stderr(&o));
    assert_eq!(hexz(&[&"verify", &arc, &"--key", &p1]).status.code(), Some(3));

    // Signed by k1, then k2 (publisher and CI), then k1 again (replaced).
    assert!(hexz(&[&"-q", &"sign", &arc, &"--key", &k1, &"--comment", &"publisher"]).status.success());
    assert!(hexz(&[&"-q", &"sign", &arc, &"--key", &k2, &"--comment", &"ci"]).status.success());
    let o = hexz(&[&"sign", &arc, &"--key", &k1, &"--comment", &"publisher 2"]);
    assert!(stderr(&o).contains("2 signature(s), replacing"), "{}", stderr(&o));
    let o = hexz(&[&"inspect", &"--json", &arc]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format_version"], "1.4");
    let comments: Vec<&str> =
        v["signatures"].as_array().unwrap().iter().map(|s| s["trusted_comment"].as_str().unwrap()).collect();
    assert_eq!(comments, ["ci", "publisher 2"]);
    for p in [&p1, &p2] {
        let o = hexz(&[&"verify", &arc, &"--key", p]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("signature by a trusted key checked"));
        assert!(hexz(&[&"verify", &"--quick", &arc, &"--key", p]).status.success());
    }
    let out = d.join("out.bin");
    assert!(hexz(&[&"--trusted-key", &p2, &"extract", &arc, &out]).status.success());
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let keys = d.join("trusted");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(&p2, keys.join("ci.pub")).unwrap();
    assert!(hexz(&[&"--trusted-keys", &keys, &"inspect", &arc]).status.success());

    // Another key: refused, and nothing written.
    let (k3, p3) = (d.join("k3.key"), d.join("k3.pub"));
    assert!(hexz(&[&"-q", &"keygen", &k3, &p3]).status.success());
    let o = hexz(&[&"--trusted-key", &p3, &"extract", &arc, &d.join("no.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no signature by a trusted key"), "{}", stderr(&o));
    assert!(!d.join("no.bin").exists());
    assert_eq!(hexz(&[&"verify", &arc, &"--key", &p3]).status.code(), Some(3));

    // A changed byte anywhere in the structure: refused with the key.
    let signed = std::fs::read(&arc).unwrap();
    let tampered = d.join("t.hxz");
    let mut t = signed.clone();
    let at = unsigned.len() - 300; // in the manifest
    t[at] ^= 1;
    std::fs::write(&tampered, &t).unwrap();
    assert_eq!(hexz(&[&"--trusted-key", &p1, &"inspect", &tampered]).status.code(), Some(1));

    // Key files: group-readable secret key, a public key given to sign, garbage.
    #[cfg(unix)]
    {
        std::fs::set_permissions(&k3, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = hexz(&[&"sign", &arc, &"--key", &k3]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    }
    let o = hexz(&[&"sign", &arc, &"--key", &p1]);
    assert!(stderr(&o).contains("this is a public key"), "{}", stderr(&o));
    std::fs::write(d.join("bad.pub"), "garbage\n").unwrap();
    let o = hexz(&[&"--trusted-key", &d.join("bad.pub"), &"inspect", &arc]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a minisign public key"), "{}", stderr(&o));

    // Removing the signatures gives back the unsigned bytes.
    assert!(hexz(&[&"-q", &"sign", &"--remove", &arc]).status.success());
    assert_eq!(std::fs::read(&arc).unwrap(), unsigned);
    assert!(Path::new(&arc).exists());
}

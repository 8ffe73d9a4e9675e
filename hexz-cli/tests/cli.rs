//! End-to-end tests of the `hexz` binary on the real models and on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn hexz(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hexz"));
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("run hexz")
}

fn model(name: &str) -> PathBuf {
    let dir = std::env::var_os("HEXZ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/hexz-models"));
    let path = dir.join(name);
    assert!(path.is_file(), "{} missing: run scripts/fetch-models.sh", path.display());
    path
}

fn sha(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Only the named files are in `dir` (no temporaries or partial outputs).
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    found.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want, "unexpected files in {}", dir.display());
}

#[test]
fn store_inspect_extract_real_models_with_every_codec() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, format, tensors) in [("minilm.safetensors", "safetensors", 104), ("gemma.gguf", "gguf", 236)] {
        let src = model(name);
        for codec in ["zstd", "lz4", "none"] {
            let hxz = tmp.path().join(format!("{name}.{codec}.hxz"));
            let o = hexz(&[
                &"--quiet",
                &"store",
                &src,
                &hxz,
                &"--compression",
                &codec,
                &"--metadata",
                &"run=7",
                &"--metadata",
                &"cfg:={\"lr\":0.001}",
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let o = hexz(&[&"inspect", &"--json", &hxz]);
            assert!(o.status.success(), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["source_format"], format);
            // Quantized GGUF blocks split into fields need format 1.2;
            // entropy-coded F32 blocks (both models have some; zstd only) 1.3.
            let version = match (format, codec) {
                (_, "zstd") => "1.3",
                ("gguf", "lz4") => "1.2",
                _ => "1.0",
            };
            assert_eq!(v["format_version"], version, "{name} {codec}");
            if format == "gguf" && codec != "none" {
                assert!(v["filters"]["fields"].as_u64().unwrap() > 0, "{}", v["filters"]);
            }
            if codec == "zstd" {
                assert!(v["filters"]["float-ans"].as_u64().unwrap() > 0, "{}", v["filters"]);
            }
            assert_eq!(v["original_size"], std::fs::metadata(&src).unwrap().len());
            assert_eq!(v["archive_size"], std::fs::metadata(&hxz).unwrap().len());
            assert_eq!(v["tensor_count"], tensors);
            assert_eq!(v["tensors"].as_array().unwrap().len(), tensors);
            assert_eq!(v["metadata"]["run"], "7");
            assert_eq!(v["metadata"]["cfg"]["lr"], 0.001);
            assert!(v["codecs"][codec].as_u64().unwrap() > 0, "{codec}: {}", v["codecs"]);
            assert!(v["parent"].is_null());
            let out = tmp.path().join("out.bin");
            let o = hexz(&[&"--quiet", &"extract", &hxz, &out]);
            assert!(o.status.success(), "{}", stderr(&o));
            assert_eq!(sha(&out), sha(&src), "{name} {codec}");
            std::fs::remove_file(&out).unwrap();
            let o = hexz(&[&"verify", &"--deep", &hxz]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
}

#[test]
fn tensor_extraction_equals_source_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("gemma.gguf");
    let hxz = tmp.path().join("g.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &hxz, &"--compression", &"lz4"]).status.success());
    let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"inspect", &"--json", &hxz]).stdout).unwrap();
    let source = std::fs::read(&src).unwrap();
    let t = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "token_embd.weight").unwrap().clone();
    let (off, len) = (t["offset"].as_u64().unwrap() as usize, t["length"].as_u64().unwrap() as usize);
    let o = hexz(&[&"extract", &hxz, &"--tensor", &"token_embd.weight"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == source[off..off + len], "stdout tensor bytes differ");
    let two = tmp.path().join("two.bin");
    let o =
        hexz(&[&"extract", &hxz, &"--tensor", &"output_norm.weight", &"--tensor", &"token_embd.weight", &"-o", &two]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "output_norm.weight").unwrap();
    let (f_off, f_len) = (first["offset"].as_u64().unwrap() as usize, first["length"].as_u64().unwrap() as usize);
    assert!(std::fs::read(&two).unwrap() == [&source[f_off..f_off + f_len], &source[off..off + len]].concat());
    let o = hexz(&[&"extract", &hxz, &"--tensor", &"no.such.tensor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no tensor named 'no.such.tensor'"), "{}", stderr(&o));
}

#[test]
fn ls_lists_archives_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm.safetensors");
    for name in ["a.hxz", "renamed.bin"] {
        assert!(hexz(&[&"-q", &"store", &src, &tmp.path().join(name), &"--compression", &"lz4"]).status.success());
    }
    std::fs::write(tmp.path().join("notes.txt"), "not an archive").unwrap();
    let o = hexz(&[&"ls", &tmp.path()]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("a.hxz") && text.contains("renamed.bin") && !text.contains("notes.txt"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"ls", &"--json", &tmp.path()]).stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn bad_input_gets_the_documented_exit_code_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = model("minilm.safetensors");
    let good = dir.join("good.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &good]).status.success());

    // Missing source file.
    let o = hexz(&[&"store", &dir.join("missing.safetensors"), &dir.join("x.hxz")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.safetensors") && stderr(&o).contains("No such file"), "{}", stderr(&o));
    // Directory instead of file.
    let o = hexz(&[&"extract", &dir, &dir.join("out.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    // A non-archive passed to extract.
    let o = hexz(&[&"extract", &src, &dir.join("out.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a hexz archive"), "{}", stderr(&o));
    // Destination exists without --force: untouched.
    let before = sha(&good);
    let o = hexz(&[&"store", &src, &good, &"--compression", &"none"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(sha(&good), before);
    // --base that is not an archive.
    let o = hexz(&[&"store", &src, &dir.join("x.hxz"), &"--base", &src]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a hexz archive"), "{}", stderr(&o));
    // Usage errors.
    assert_eq!(hexz(&[&"store", &src]).status.code(), Some(2));
    assert_eq!(hexz(&[&"store", &src, &dir.join("x.hxz"), &"--block-size", &"12Q"]).status.code(), Some(2));

    // A truncated archive.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.hxz");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let o = hexz(&[&"extract", &truncated, &dir.join("out.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("truncated.hxz"), "{}", stderr(&o));
    let o = hexz(&[&"verify", &truncated]);
    assert_eq!(o.status.code(), Some(3));
    // A corrupted archive: one byte inside the stored blocks.
    let mut corrupt = bytes.clone();
    corrupt[bytes.len() / 3] ^= 0x40;
    let corrupted = dir.join("corrupted.hxz");
    std::fs::write(&corrupted, &corrupt).unwrap();
    let o = hexz(&[&"extract", &corrupted, &dir.join("out.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("corrupted.hxz") && stderr(&o).contains("block"), "{}", stderr(&o));
    let o = hexz(&[&"verify", &"--deep", &"--json", &corrupted]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(!v["problems"].as_array().unwrap().is_empty());
    // Plain verify decodes every block (as `zstd -t` does) and catches it;
    // --quick checks structure only, which the flipped data byte leaves intact.
    let o = hexz(&[&"verify", &corrupted]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = hexz(&[&"verify", &"--quick", &corrupted]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("structure only"), "{}", stderr(&o));

    assert_only(dir, &["good.hxz", "truncated.hxz", "corrupted.hxz"]);
}

/// A fine-tune of the real MiniLM: the float tensors whose names start with
/// `prefix` get every element scaled by (1 + tiny), the rest is unchanged.
fn fine_tune(src: &Path, dst: &Path, prefix: &str, salt: u32) {
    let mut bytes = std::fs::read(src).unwrap();
    let header = hexz_format::safetensors::parse(&bytes, bytes.len() as u64).unwrap();
    for t in header.tensors.iter().filter(|t| t.name.starts_with(prefix) && t.dtype == "F32") {
        for (i, c) in bytes[t.offset as usize..(t.offset + t.length) as usize].chunks_exact_mut(4).enumerate() {
            let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let tiny = (((i as u32).wrapping_mul(2654435761).wrapping_add(salt) >> 20) as f32 - 2048.0) * 1e-6;
            c.copy_from_slice(&(x * (1.0 + tiny)).to_le_bytes());
        }
    }
    std::fs::write(dst, bytes).unwrap();
}

#[test]
fn fine_tunes_store_against_their_base_and_form_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = model("minilm.safetensors");
    let (v1, v2) = (dir.join("v1.safetensors"), dir.join("v2.safetensors"));
    fine_tune(&src, &v1, "encoder.layer.", 1);
    fine_tune(&v1, &v2, "encoder.layer.5.", 2);
    let base = dir.join("base.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &base]).status.success());
    let o = hexz(&[&"store", &v1, &dir.join("v1.hxz"), &"--base", &base]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hexz(&[&"-q", &"store", &v2, &dir.join("v2.hxz"), &"--base", &dir.join("v1.hxz")]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (hxz, file) in [("v1.hxz", &v1), ("v2.hxz", &v2)] {
        let out = dir.join("out.bin");
        let o = hexz(&[&"-q", &"extract", &dir.join(hxz), &out]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(sha(&out), sha(file), "{hxz}");
        std::fs::remove_file(&out).unwrap();
        let o = hexz(&[&"verify", &"--deep", &dir.join(hxz)]);
        assert!(o.status.success(), "{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    }
    // Sizes: v2 changed one layer of v1, so it is a small fraction of its file.
    let v2_size = std::fs::metadata(dir.join("v2.hxz")).unwrap().len();
    assert!(v2_size * 10 < std::fs::metadata(&v2).unwrap().len(), "v2.hxz is {v2_size} bytes");

    // inspect shows the chain and per-tensor storage kinds.
    let v: serde_json::Value =
        serde_json::from_slice(&hexz(&[&"inspect", &"--json", &dir.join("v2.hxz")]).stdout).unwrap();
    assert_eq!(v["chain"].as_array().unwrap().len(), 3);
    assert_eq!(v["parent"]["hint"], "v1.hxz");
    let kinds: Vec<&str> = v["tensors"].as_array().unwrap().iter().map(|t| t["storage"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"delta") && kinds.contains(&"parent"), "{kinds:?}");

    // ls draws the chain as a tree.
    let o = hexz(&[&"ls", &dir]);
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("base.hxz") && lines[1].contains("└── v1.hxz") && lines[2].contains("└── v2.hxz"),
        "{text}"
    );

    // diff: v2 against v1 changes exactly the layer-5 float tensors.
    let o = hexz(&[&"diff", &"--json", &dir.join("v1.hxz"), &dir.join("v2.hxz")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["b_is_child_of_a"], true);
    for t in d["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let want = if name.starts_with("encoder.layer.5.") && t["dtype"] == "F32" { "changed" } else { "identical" };
        assert_eq!(t["status"], want, "{name}");
    }

    // A missing base is an error naming the identity expected and the path tried.
    std::fs::create_dir(dir.join("moved")).unwrap();
    std::fs::rename(&base, dir.join("moved/base.hxz")).unwrap();
    let o = hexz(&[&"extract", &dir.join("v2.hxz"), &dir.join("out.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not found") && stderr(&o).contains("base.hxz"), "{}", stderr(&o));
    assert!(!dir.join("out.bin").exists());
    let o = hexz(&[&"verify", &dir.join("v2.hxz")]);
    assert_eq!(o.status.code(), Some(3));
    // --parent-dir finds a moved parent.
    let o = hexz(&[&"-q", &"extract", &dir.join("v2.hxz"), &dir.join("out.bin"), &"--parent-dir", &dir.join("moved")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sha(&dir.join("out.bin")), sha(&v2));
}

/// Run hexz under an address-space limit (1 GiB), like `ulimit -v`.
fn hexz_limited(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -v 1048576; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_hexz"));
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("run hexz")
}

#[test]
fn hostile_inputs_fail_cleanly_under_a_memory_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A safetensors header claiming 100 GB.
    let st = dir.join("huge.safetensors");
    let mut bytes = (100u64 << 30).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"a\":{}}");
    std::fs::write(&st, &bytes).unwrap();
    // GGUF: a string length near u64::MAX, and a tensor count near u64::MAX.
    let gg = dir.join("huge-string.gguf");
    let mut g = b"GGUF".to_vec();
    g.extend_from_slice(&3u32.to_le_bytes());
    g.extend_from_slice(&0u64.to_le_bytes());
    g.extend_from_slice(&1u64.to_le_bytes());
    g.extend_from_slice(&(u64::MAX - 7).to_le_bytes());
    g.extend_from_slice(&[b'k'; 64]);
    std::fs::write(&gg, &g).unwrap();
    let gc = dir.join("huge-count.gguf");
    let mut g = b"GGUF".to_vec();
    g.extend_from_slice(&3u32.to_le_bytes());
    g.extend_from_slice(&(u64::MAX - 1).to_le_bytes());
    g.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(&gc, &g).unwrap();
    for src in [&st, &gg, &gc] {
        let out = dir.join("out.hxz");
        let o = hexz_limited(&[&"store", src, &out]);
        assert_eq!(o.status.code(), Some(1), "{}: {}", src.display(), stderr(&o));
        assert!(stderr(&o).contains(src.file_name().unwrap().to_str().unwrap()), "{}", stderr(&o));
        assert!(stderr(&o).contains("--raw"), "{}", stderr(&o));
        assert!(!out.exists());
        // --raw stores such a file as the plain bytes it is.
        let o = hexz_limited(&[&"-q", &"store", &"--raw", src, &out]);
        assert!(o.status.success(), "{}", stderr(&o));
        let back = dir.join("back.bin");
        assert!(hexz(&[&"-q", &"extract", &out, &back]).status.success());
        assert_eq!(sha(&back), sha(src));
        std::fs::remove_file(&out).unwrap();
        std::fs::remove_file(&back).unwrap();
    }
    // An archive whose footer claims a huge manifest and huge block count (checksum made valid).
    let src = model("minilm.safetensors");
    let good = dir.join("good.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &good, &"--compression", &"lz4"]).status.success());
    let mut a = std::fs::read(&good).unwrap();
    let footer_at = a.len() - hexz_format::layout::FOOTER_SIZE;
    a[footer_at + 16..footer_at + 24].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
    a[footer_at + 48..footer_at + 56].copy_from_slice(&(1u64 << 50).to_le_bytes());
    let c = hexz_format::layout::short_checksum(&a[footer_at..footer_at + hexz_format::layout::FOOTER_SIZE - 8]);
    let end = a.len();
    a[end - 8..].copy_from_slice(&c.to_le_bytes());
    let forged = dir.join("forged.hxz");
    std::fs::write(&forged, &a).unwrap();
    let o = hexz_limited(&[&"verify", &"--deep", &forged]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = hexz_limited(&[&"extract", &forged, &dir.join("x.bin")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("forged.hxz"), "{}", stderr(&o));
}

#[test]
fn killed_store_never_leaves_a_valid_looking_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = model("gemma.gguf");
    let existing = dir.join("existing.hxz");
    assert!(hexz(&[&"-q", &"store", &model("minilm.safetensors"), &existing, &"--compression", &"lz4"])
        .status
        .success());
    let before = sha(&existing);
    for (i, delay_ms) in [5u64, 50, 150, 300, 600].into_iter().enumerate() {
        let fresh = dir.join(format!("fresh{i}.hxz"));
        for (dst, force) in [(&fresh, false), (&existing, true)] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_hexz"));
            cmd.arg("-q").arg("store").arg(&src).arg(dst).arg("--compression").arg("zstd");
            if force {
                cmd.arg("--force");
            }
            let mut child = cmd.spawn().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let _ = child.kill(); // SIGKILL
            let status = child.wait().unwrap();
            if status.success() {
                // It finished before the kill: then the result must be complete.
                assert!(hexz(&[&"verify", dst]).status.success());
                continue;
            }
            if force {
                assert_eq!(sha(&existing), before, "existing destination changed by a killed store");
            } else {
                assert!(!fresh.exists(), "killed store left {}", fresh.display());
            }
        }
    }
    // Leftover temporaries (SIGKILL cannot clean up) never open as archives.
    let leftovers = |prefix: &str| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    };
    for path in leftovers(".") {
        let o = hexz(&[&"verify", &path]);
        assert_eq!(o.status.code(), Some(3), "{} verified as valid", path.display());
    }
    // The next store to the same destination removes those of dead writers.
    let mut stale = leftovers(".existing.hxz.hexz-tmp-");
    if stale.is_empty() {
        // Every kill came too late to leave one: make one as a killed writer would.
        let dead = dir.join(".existing.hxz.hexz-tmp-4194304-0");
        std::fs::write(&dead, b"HEXZ partial").unwrap();
        stale.push(dead);
    }
    let o = hexz(&[&"-q", &"store", &src, &existing, &"--compression", &"lz4", &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let left = leftovers(".existing.hxz.hexz-tmp-");
    assert!(left.is_empty(), "stale temporaries {left:?} (had {stale:?})");
}

/// `--format 1.1`: quantized GGUF blocks byte-grouped, no 1.2 feature
/// (the archive declares 1.0, as a single file needs nothing newer), and
/// the same bytes back; 1.2 splits them into fields; the default (1.3)
/// also entropy-codes the F32 blocks.
#[test]
fn store_format_1_1_leaves_out_the_fields_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("gemma.gguf");
    for (format, version, fields) in [("1.1", "1.0", false), ("1.2", "1.2", true), ("1.3", "1.3", true)] {
        let hxz = tmp.path().join(format!("g-{format}.hxz"));
        let o = hexz(&[&"--quiet", &"store", &src, &hxz, &"--format", &format]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = hexz(&[&"inspect", &"--json", &hxz]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["format_version"], version);
        assert_eq!(v["filters"].get("fields").is_some(), fields, "{}", v["filters"]);
        assert_eq!(v["filters"].get("float-ans").is_some(), format == "1.3", "{}", v["filters"]);
        let out = tmp.path().join("out.gguf");
        let o = hexz(&[&"--quiet", &"extract", &hxz, &out, &"--force"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(sha(&out), sha(&src));
    }
    let o = hexz(&[&"store", &src, &tmp.path().join("x.hxz"), &"--format", &"1.0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

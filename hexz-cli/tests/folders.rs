//! Whole checkpoint folders (issue #10) on the real MiniLM model: an HF-style
//! folder of 3 shards with its config and tokenizer files, a fine-tune
//! re-sharded into 2, content-defined chunking of an edited raw file, and
//! path attacks from hand-made archives. The folders are built by
//! tests/make_folders.py (with the safetensors library) from the PyPI model.
// Unix only: the cases use FIFOs, device nodes, symlinks, signals and
// permission bits. On Windows, scripts/cross-test.sh tests the CLI instead.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hexz_format::layout::{FileKind, SourceFormat};
use hexz_format::manifest::FileInfo;
use hexz_format::plan::{Plan, Segment};
use hexz_format::writer::{store_plan, StoreOptions};

fn hexz(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hexz"));
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("run hexz")
}

fn models() -> PathBuf {
    std::env::var_os("HEXZ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/hexz-models"))
}

fn model(name: &str) -> PathBuf {
    let path = models().join(name);
    assert!(path.exists(), "{} missing: run scripts/fetch-models.sh and tests/make_folders.py", path.display());
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `diff -r`: the same tree, byte for byte.
fn same_tree(a: &Path, b: &Path) {
    let o = Command::new("diff").arg("-r").arg(a).arg(b).output().unwrap();
    assert!(o.status.success(), "trees differ: {}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_sharded_checkpoint_folder_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm-sharded");
    // An empty folder and an executable script, as checkpoints sometimes carry.
    let work = tmp.path().join("ckpt");
    assert!(Command::new("cp").arg("-a").arg(&src).arg(&work).status().unwrap().success());
    std::fs::create_dir_all(work.join("logs/empty")).unwrap();
    std::fs::write(work.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();

    let hxz = tmp.path().join("ckpt.hxz");
    let o = hexz(&[&"-q", &"store", &work, &hxz]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp.path().join("out");
    let o = hexz(&[&"-q", &"extract", &hxz, &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    same_tree(&work, &out);
    assert!(out.join("logs/empty").is_dir(), "the empty folder was not kept");
    let mode = std::fs::metadata(out.join("run.sh")).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the executable bit was lost ({mode:o})");
    assert!(hexz(&[&"-q", &"verify", &hxz]).status.success());

    // inspect lists the files; tensors name their shard; one file and one tensor come out alone.
    let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"inspect", &"--json", &hxz]).stdout).unwrap();
    // A folder (1.1) of F32 shards, entropy-coded (1.3).
    assert_eq!(v["format_version"], "1.3");
    assert_eq!(v["source_format"], "folder");
    let files: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(files.contains(&"config.json") && files.contains(&"model-00002-of-00003.safetensors"), "{files:?}");
    assert!(files.contains(&"logs/empty"), "{files:?}");
    let tensor = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "pooler.dense.weight").unwrap();
    assert!(tensor["file"].as_str().unwrap().starts_with("model-0000"), "{tensor}");
    let o = hexz(&[&"extract", &hxz, &"--file", &"config.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, std::fs::read(work.join("config.json")).unwrap());
    let o = hexz(&[&"extract", &hxz, &"--tensor", &"pooler.dense.weight"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 384 * 384 * 4);
    let o = hexz(&[&"ls", &tmp.path()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("a folder of"), "{}", String::from_utf8_lossy(&o.stdout));
    let o = hexz(&[&"extract", &hxz, &"--file", &"no/such.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no file 'no/such.json'"), "{}", stderr(&o));

    // An existing destination: refused without --force; replaced whole with it.
    let o = hexz(&[&"extract", &hxz, &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // A symlink planted in the destination is never followed: the tree is replaced, the target untouched.
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::remove_file(out.join("config.json")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("config.json")).unwrap();
    let o = hexz(&[&"-q", &"extract", &hxz, &out, &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    same_tree(&work, &out);
    // Nothing else was left next to it.
    let mut names: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["ckpt", "ckpt.hxz", "out", "victim.txt"]);
}

#[test]
fn a_resharded_fine_tune_costs_what_a_single_file_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Folders: base in 3 shards, fine-tune in 2.
    let (base, ft) = (dir.join("base.hxz"), dir.join("ft.hxz"));
    assert!(hexz(&[&"-q", &"store", &model("minilm-sharded"), &base]).status.success());
    let o = hexz(&[&"-q", &"store", &model("minilm-ft-sharded"), &ft, &"--base", &base]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same fine-tune as single files.
    let (base1, ft1) = (dir.join("base1.hxz"), dir.join("ft1.hxz"));
    assert!(hexz(&[&"-q", &"store", &model("minilm.safetensors"), &base1]).status.success());
    assert!(hexz(&[&"-q", &"store", &model("minilm-ft.safetensors"), &ft1, &"--base", &base1]).status.success());
    let (folder, single) = (std::fs::metadata(&ft).unwrap().len(), std::fs::metadata(&ft1).unwrap().len());
    eprintln!("fine-tune against its base: folder (3 -> 2 shards) {folder} bytes, single file {single} bytes");
    assert!((folder as f64) < single as f64 * 1.05, "folder {folder} vs single {single}");
    // And it reads back exactly.
    let out = dir.join("ft-out");
    assert!(hexz(&[&"-q", &"extract", &ft, &out]).status.success());
    same_tree(&model("minilm-ft-sharded"), &out);
    // diff pairs tensors by name across shards.
    let d: serde_json::Value = serde_json::from_slice(&hexz(&[&"diff", &"--json", &base, &ft]).stdout).unwrap();
    for t in d["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let changed = name.contains(".layer.4.") || name.contains(".layer.5.");
        assert_eq!(t["status"], if changed { "changed" } else { "identical" }, "{name}");
    }
}

#[test]
fn content_defined_chunking_keeps_an_edited_raw_file_small_against_its_base() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 20 MB of text-like data (a non-tensor file), and the same with 100 bytes inserted near its start.
    let mut x = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: Vec<Vec<u8>> =
        (0..4000).map(|_| (0..2 + next() % 8).map(|_| b'a' + (next() % 26) as u8).collect()).collect();
    let mut original = Vec::new();
    while original.len() < 20_000_000 {
        original.extend_from_slice(&words[(next() % 4000) as usize]);
        original.push(if next() % 12 == 0 { b'\n' } else { b' ' });
    }
    let mut edited = original[..1000].to_vec();
    edited.extend((0..100).map(|_| next() as u8));
    edited.extend_from_slice(&original[1000..]);
    std::fs::write(dir.join("orig.bin"), &original).unwrap();
    std::fs::write(dir.join("edit.bin"), &edited).unwrap();
    for (chunking, bound) in [("cdc", 0.05), ("fixed", 1.0)] {
        let (o, e) = (dir.join(format!("o-{chunking}.hxz")), dir.join(format!("e-{chunking}.hxz")));
        assert!(hexz(&[&"-q", &"store", &dir.join("orig.bin"), &o, &"--chunking", &chunking]).status.success());
        let out = hexz(&[&"-q", &"store", &dir.join("edit.bin"), &e, &"--base", &o, &"--chunking", &chunking]);
        assert!(out.status.success(), "{}", stderr(&out));
        let (base, child) = (std::fs::metadata(&o).unwrap().len(), std::fs::metadata(&e).unwrap().len());
        let share = child as f64 / edited.len() as f64;
        eprintln!(
            "{chunking}: original stored in {base} bytes; the edit against it {child} bytes ({share:.4} of the file)"
        );
        if chunking == "cdc" {
            assert!(share < bound, "cdc: {share}");
        } else {
            // Fixed blocks all shift: the child stores about the whole (compressed) file again.
            assert!(child as f64 > base as f64 * 0.9, "fixed: {child} vs {base}");
        }
        let back = dir.join("back.bin");
        assert!(hexz(&[&"-q", &"extract", &e, &back, &"--force"]).status.success());
        assert!(std::fs::read(&back).unwrap() == edited);
    }
}

/// A folder archive holding `files` (paths and lengths as given, content
/// zeros), written with the core writer from a hand-made plan: how an
/// attacker would craft one (the CLI never writes such paths).
fn crafted(files: &[(&str, u64)], fake_total: Option<u64>) -> Vec<u8> {
    let mut infos = Vec::new();
    let mut segments = Vec::new();
    let mut offset = 0u64;
    for (path, len) in files {
        infos.push(FileInfo {
            path: path.to_string(),
            kind: FileKind::File,
            offset,
            length: *len,
            mode: 0o644,
            mtime_ns: 0,
            source_format: SourceFormat::Raw,
            source_header_length: 0,
        });
        if *len > 0 {
            segments.push(Segment::unstructured(offset, *len, false));
        }
        offset += len;
    }
    if let Some(total) = fake_total {
        // Claim more bytes than the files hold.
        infos.last_mut().unwrap().length += total;
    }
    let plan = Plan { format: SourceFormat::Folder, header_length: 0, tensors: Vec::new(), segments, files: infos };
    let src = vec![0u8; offset as usize];
    let mut out = Vec::new();
    store_plan::<_, &[u8]>(
        src.as_slice(),
        plan,
        &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        },
        &StoreOptions::default(),
        None,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    out
}

#[test]
fn path_attacks_are_refused_and_nothing_is_written_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dot-dot", crafted(&[("../x", 10)], None)),
        ("absolute", crafted(&[("/etc/x", 10)], None)),
        ("nested dot-dot", crafted(&[("a/../../x", 10)], None)),
        ("duplicate", crafted(&[("a", 5), ("a", 5)], None)),
        ("file under a file", crafted(&[("a", 5), ("a/b", 5)], None)),
        ("empty component", crafted(&[("a//b", 5)], None)),
        ("sizes disagree", crafted(&[("a", 5), ("b", 5)], Some(100))),
    ];
    for (name, bytes) in cases {
        let hxz = dir.join(format!("{}.hxz", name.replace(' ', "-")));
        std::fs::write(&hxz, &bytes).unwrap();
        let out = dir.join("out");
        let o = hexz(&[&"extract", &hxz, &out]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("file"), "{name}: {}", stderr(&o));
        assert!(!out.exists(), "{name}: something was extracted");
        assert!(!dir.join("x").exists() && !Path::new("/etc/x").exists(), "{name}: wrote outside");
        let o = hexz(&[&"verify", &hxz]);
        assert_eq!(o.status.code(), Some(3), "{name}: verify passed");
    }
}

/// The bytes of tensor `name` in the safetensors file at `path`.
fn safetensors_tensor(path: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let (a, b) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
    bytes[8 + n + a..8 + n + b].to_vec()
}

/// Issue #32: an empty source folder round-trips (store, inspect, ls,
/// extract to an empty folder, verify): a folder archive (1.1) with no files.
#[test]
fn an_empty_folder_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("empty");
    std::fs::create_dir(&src).unwrap();
    let hxz = tmp.path().join("empty.hxz");
    let o = hexz(&[&"-q", &"store", &src, &hxz]);
    assert!(o.status.success(), "{}", stderr(&o));
    for how in ["--quick", "--deep"] {
        let o = hexz(&[&"verify", &hxz, &how]);
        assert!(o.status.success(), "verify {how}: {}", stderr(&o));
    }
    let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"inspect", &"--json", &hxz]).stdout).unwrap();
    assert_eq!(v["source_format"], "folder");
    assert_eq!(v["format_version"], "1.1");
    assert_eq!(v["original_size"], 0);
    assert_eq!(v["block_count"], 0);
    let o = hexz(&[&"inspect", &hxz]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hexz(&[&"ls", &tmp.path()]);
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(listed.contains("empty.hxz") && listed.contains("a folder of 0 files"), "{listed}");
    let out = tmp.path().join("out");
    let o = hexz(&[&"-q", &"extract", &hxz, &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.is_dir());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "the extracted folder is not empty");
}

/// Issue #32: a training run's checkpoint-500/ and checkpoint-1000/ hold
/// the same tensor names. The archive verifies; a bare name they share is
/// an error naming both files; FILE:NAME reads the one asked for; inspect
/// shows each tensor as FILE:NAME.
#[test]
fn checkpoints_sharing_tensor_names_are_addressed_by_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm-runs");
    let hxz = tmp.path().join("runs.hxz");
    let o = hexz(&[&"-q", &"store", &src, &hxz]);
    assert!(o.status.success(), "{}", stderr(&o));
    for how in ["--quick", "--deep"] {
        let o = hexz(&[&"verify", &hxz, &how]);
        assert!(o.status.success(), "verify {how}: {}", stderr(&o));
    }
    let name = "encoder.layer.4.attention.self.query.weight";
    let o = hexz(&[&"extract", &hxz, &"--tensor", &name]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "tensor '{name}' is in 2 files (checkpoint-1000/model.safetensors, checkpoint-500/model.safetensors)"
        )),
        "{}",
        stderr(&o)
    );
    let mut read = Vec::new();
    for step in ["500", "1000"] {
        let file = format!("checkpoint-{step}/model.safetensors");
        let o = hexz(&[&"extract", &hxz, &"--tensor", &format!("{file}:{name}")]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(o.stdout == safetensors_tensor(&src.join(&file), name), "{file}:{name}: other bytes");
        read.push(o.stdout);
    }
    assert!(read[0] != read[1], "the fine-tuned tensor should differ between the checkpoints");
    let o = hexz(&[&"extract", &hxz, &"--tensor", &"checkpoint-500/model.safetensors:no.such.tensor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no tensor named 'no.such.tensor' in file 'checkpoint-500/model.safetensors'"),
        "{}",
        stderr(&o)
    );
    let o = hexz(&[&"extract", &hxz, &"--tensor", &"checkpoint-9/model.safetensors:x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no tensor named 'checkpoint-9/model.safetensors:x'"), "{}", stderr(&o));
    let shown = String::from_utf8_lossy(&hexz(&[&"inspect", &hxz]).stdout).into_owned();
    assert!(shown.contains(&format!("checkpoint-1000/model.safetensors:{name}")), "{shown}");
    let out = tmp.path().join("out");
    let o = hexz(&[&"-q", &"extract", &hxz, &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    same_tree(&src, &out);
    // diff pairs each checkpoint's tensors with the same file's: an archive
    // against itself is identical throughout, every tensor named FILE:NAME.
    let d: serde_json::Value = serde_json::from_slice(&hexz(&[&"diff", &"--json", &hxz, &hxz]).stdout).unwrap();
    let rows = d["tensors"].as_array().unwrap();
    assert!(rows.len() > 2 && rows.iter().all(|t| t["status"] == "identical"), "{d}");
    for step in ["500", "1000"] {
        let row = format!("checkpoint-{step}/model.safetensors:{name}");
        assert!(rows.iter().any(|t| t["name"] == row.as_str()), "no row {row}");
    }
    // A bare name held by one file only still works (the sharded folder).
    let sharded = tmp.path().join("sharded.hxz");
    assert!(hexz(&[&"-q", &"store", &model("minilm-sharded"), &sharded]).status.success());
    let o = hexz(&[&"extract", &sharded, &"--tensor", &name]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Issue #32: a child written for format 1.2 against a 1.3 parent (whose
/// F32 blocks are entropy-coded) copies none of its `ans` entries, so it
/// declares what it uses (no 1.3 feature) and a 1.2 reader reads it.
#[test]
fn a_child_written_for_an_older_format_does_not_copy_newer_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, ft) = (tmp.path().join("base.hxz"), tmp.path().join("ft.hxz"));
    assert!(hexz(&[&"-q", &"store", &model("minilm.safetensors"), &base]).status.success());
    let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"inspect", &"--json", &base]).stdout).unwrap();
    assert_eq!(v["format_version"], "1.3");
    assert!(v["codecs"]["ans"].as_u64().unwrap_or(0) > 0, "{}", v["codecs"]);
    for format in ["1.1", "1.2"] {
        let o = hexz(&[
            &"-q",
            &"store",
            &model("minilm-ft.safetensors"),
            &ft,
            &"--base",
            &base,
            &"--format",
            &format,
            &"--force",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"inspect", &"--json", &ft]).stdout).unwrap();
        assert_eq!(v["format_version"], "1.0", "--format {format}");
        assert!(v["codecs"].get("ans").is_none(), "--format {format}: {}", v["codecs"]);
        assert!(v["parent_blocks"].as_u64().unwrap() > 0, "unchanged blocks are still referenced");
        let o = hexz(&[&"verify", &ft]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

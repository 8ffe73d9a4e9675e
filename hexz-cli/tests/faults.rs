//! The CLI under faults, as a reliability engineer tries an archiver before
//! trusting it with checkpoints (issue #17): full disks, signals, racing
//! processes, device nodes and FIFOs as destinations, commands aimed at
//! their own inputs, corrupted archives, absurd options. Every case: a
//! clear error naming the file at fault, the documented exit code, nothing
//! left behind, never a hang.
// Unix only: the cases use FIFOs, device nodes, symlinks, signals and
// permission bits. On Windows, scripts/cross-test.sh tests the CLI instead.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hexz")
}

fn hexz(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(bin());
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

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A tmpfs of `size` mounted at a new folder; unmounted on drop. None when
/// mounting is impossible here (not root, no mount permission): the caller
/// says why it skips.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str, read_only: bool) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let opts = if read_only { format!("size={size},ro") } else { format!("size={size}") };
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Skip with a stated reason, loudly, only where mounting is impossible.
fn mount_or_skip(size: &str, read_only: bool) -> Option<Tmpfs> {
    let m = Tmpfs::mount(size, read_only);
    if m.is_none() {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root and mount permission); CI runs as root");
    }
    m
}

#[test]
fn a_full_disk_fails_store_and_extract_fast_naming_the_destination() {
    let Some(disk) = mount_or_skip("50m", false) else { return };
    let gemma = model("gemma.gguf");
    for threads in ["1", "2", "8"] {
        let dst = disk.path().join("g.hxz");
        let started = Instant::now();
        let o = hexz(&[&"store", &gemma, &dst, &"--threads", &threads]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(&dst.display().to_string()), "{}", stderr(&o));
        assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
        assert!(files_in(disk.path()).is_empty(), "left behind: {:?}", files_in(disk.path()));
    }
    // Extract of a good archive into the full disk: the output is named, nothing is left.
    let tmp = tempfile::tempdir().unwrap();
    let hxz = tmp.path().join("g.hxz");
    assert!(hexz(&[&"-q", &"store", &gemma, &hxz, &"--compression", &"lz4"]).status.success());
    let out = disk.path().join("g.gguf");
    let o = hexz(&[&"extract", &hxz, &out]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&out.display().to_string()) && stderr(&o).contains("No space left"), "{}", stderr(&o));
    assert!(files_in(disk.path()).is_empty(), "left behind: {:?}", files_in(disk.path()));
}

#[test]
fn errors_name_the_file_at_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm.safetensors");
    // A missing destination folder: the destination is named, with the OS text.
    let dst = tmp.path().join("no/such/dir/x.hxz");
    let o = hexz(&[&"store", &src, &dst]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("no/such/dir/x.hxz") && e.contains("No such file or directory") && !e.contains("minilm"), "{e}");
    // A read-only file system: the destination, and the OS's words.
    if let Some(ro) = mount_or_skip("1m", true) {
        let dst = ro.path().join("x.hxz");
        let o = hexz(&[&"store", &src, &dst]);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains(&dst.display().to_string()) && stderr(&o).contains("Read-only file system"),
            "{}",
            stderr(&o)
        );
    }
    // A missing base names the base.
    let o = hexz(&[&"store", &src, &tmp.path().join("y.hxz"), &"--base", &tmp.path().join("nope.hxz")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.hxz") && !stderr(&o).contains("minilm"), "{}", stderr(&o));
}

#[test]
fn device_nodes_fifos_and_stdout_are_written_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm.safetensors");
    let hxz = tmp.path().join("m.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &hxz, &"--compression", &"lz4"]).status.success());
    // /dev/null, with and without --force: written into, still a device.
    for force in [false, true] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"-q", &"extract", &hxz, &"/dev/null"];
        if force {
            args.push(&"--force");
        }
        let o = hexz(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null was replaced");
    }
    // `-` and `-o -` are standard output.
    for args in [vec!["extract", "ARCHIVE", "-"], vec!["extract", "ARCHIVE", "-o", "-"]] {
        let mut cmd = Command::new(bin());
        for a in args {
            cmd.arg(if a == "ARCHIVE" { hxz.as_os_str() } else { a.as_ref() });
        }
        let o = cmd.current_dir(tmp.path()).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(Sha256::digest(&o.stdout).to_vec(), sha(&src));
        assert!(!tmp.path().join("-").exists(), "a file named - was created");
    }
    // A FIFO: written in order to the reader on the other end, not replaced.
    let fifo = tmp.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = hexz(&[&"-q", &"extract", &hxz, &fifo, &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(Sha256::digest(reader.join().unwrap()).to_vec(), sha(&src));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // A FIFO as the archive to read or the file to store: refused at once, no hang.
    let started = Instant::now();
    let o = hexz(&[&"extract", &fifo, &tmp.path().join("o.bin")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    let o = hexz(&[&"store", &fifo, &tmp.path().join("o.hxz")]);
    assert_eq!(o.status.code(), Some(1));
    let o = hexz(&[&"verify", &fifo]);
    assert_eq!(o.status.code(), Some(3));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn commands_refuse_to_overwrite_their_own_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = model("minilm.safetensors");
    let (base, ft1, ft2) = (dir.join("base.hxz"), dir.join("ft1.hxz"), dir.join("ft2.hxz"));
    let ft_src = dir.join("ft.safetensors");
    let mut bytes = std::fs::read(&src).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    std::fs::write(&ft_src, &bytes).unwrap();
    assert!(hexz(&[&"-q", &"store", &src, &base]).status.success());
    assert!(hexz(&[&"-q", &"store", &ft_src, &ft1, &"--base", &base]).status.success());
    assert!(hexz(&[&"-q", &"store", &ft_src, &ft2, &"--base", &ft1]).status.success());
    let before: Vec<_> = [&base, &ft1, &ft2].iter().map(|p| sha(p)).collect();
    // extract x.hxz x.hxz --force; extract child.hxz parent.hxz --force (and grandparent).
    for (archive, out) in [(&ft2, &ft2), (&ft2, &ft1), (&ft2, &base), (&ft1, &base)] {
        let o = hexz(&[&"extract", archive, out, &"--force"]);
        assert_eq!(o.status.code(), Some(1), "{} -> {}", archive.display(), out.display());
        assert!(stderr(&o).contains("refusing to overwrite an input"), "{}", stderr(&o));
    }
    // store ft ft1.hxz --base ft2.hxz --force, where ft1 is ft2's parent.
    let o = hexz(&[&"store", &ft_src, &ft1, &"--base", &ft2, &"--force"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("base chain"), "{}", stderr(&o));
    // store x x --force, also through a symlink.
    std::os::unix::fs::symlink(&ft_src, dir.join("link")).unwrap();
    let o = hexz(&[&"store", &ft_src, &dir.join("link"), &"--force"]);
    assert_eq!(o.status.code(), Some(1));
    let after: Vec<_> = [&base, &ft1, &ft2].iter().map(|p| sha(p)).collect();
    assert_eq!(before, after, "an input changed");
    assert!(hexz(&[&"-q", &"verify", &ft2]).status.success());
}

#[test]
fn a_dangling_symlink_counts_as_an_existing_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("dangling.hxz");
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), &link).unwrap();
    let src = model("minilm.safetensors");
    let o = hexz(&[&"store", &src, &link, &"--compression", &"lz4"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let o = hexz(&[&"-q", &"store", &src, &link, &"--compression", &"lz4", &"--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
}

/// Start a store of gemma, signal it once it has written something, and
/// return its exit code and the folder's files.
fn signalled_store(signal: i32) -> (Option<i32>, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["-q", "store", "--threads", "1"])
        .arg(model("gemma.gguf"))
        .arg(tmp.path().join("g.hxz"))
        .spawn()
        .unwrap();
    // Wait until the temporary holds some bytes.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let growing = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 1 << 20));
        if growing {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap().success());
    let status = child.wait().unwrap();
    (status.code(), files_in(tmp.path()))
}

#[test]
fn sigint_and_sigterm_remove_the_temporary_and_exit_130_and_143() {
    for (signal, code) in [(2, 130), (15, 143)] {
        let (exit, left) = signalled_store(signal);
        if exit == Some(0) {
            // The store finished before the signal landed: then the archive is complete.
            assert_eq!(left, vec!["g.hxz".to_string()]);
            continue;
        }
        assert_eq!(exit, Some(code), "signal {signal}");
        assert!(left.is_empty(), "signal {signal} left {left:?}");
    }
}

#[test]
fn ls_reports_temporaries_of_dead_processes_and_store_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join(".x.hxz.hexz-tmp-4194303-abc");
    std::fs::write(&stale, b"partial").unwrap();
    let o = hexz(&[&"ls", &tmp.path()]);
    assert!(o.status.success());
    assert!(stderr(&o).contains(".x.hxz.hexz-tmp-4194303-abc"), "{}", stderr(&o));
    let o =
        hexz(&[&"-q", &"store", &model("minilm.safetensors"), &tmp.path().join("other.hxz"), &"--compression", &"lz4"]);
    assert!(o.status.success());
    assert!(!stale.exists(), "store did not remove the stale temporary");
}

#[test]
fn two_processes_racing_to_one_new_name_have_one_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.bin"), tmp.path().join("b.bin"));
    std::fs::write(&a, vec![1u8; 20 << 20]).unwrap();
    std::fs::write(&b, vec![2u8; 20 << 20]).unwrap();
    let dst = tmp.path().join("x.hxz");
    for _ in 0..3 {
        let _ = std::fs::remove_file(&dst);
        let spawn = |src: &Path| {
            Command::new(bin()).arg("-q").arg("store").arg(src).arg(&dst).stderr(Stdio::piped()).spawn().unwrap()
        };
        let (one, two) = (spawn(&a), spawn(&b));
        let outs = [one.wait_with_output().unwrap(), two.wait_with_output().unwrap()];
        let winners = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(winners, 1, "{:?}", outs.iter().map(stderr).collect::<Vec<_>>());
        let loser = outs.iter().find(|o| !o.status.success()).unwrap();
        assert_eq!(loser.status.code(), Some(1));
        assert!(stderr(loser).contains("x.hxz") && stderr(loser).contains("already exists"), "{}", stderr(loser));
        assert_eq!(files_in(tmp.path()).len(), 3, "{:?}", files_in(tmp.path()));
    }
}

#[test]
fn plain_verify_checks_every_block_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let hxz = tmp.path().join("g.hxz");
    assert!(hexz(&[&"-q", &"store", &model("gemma.gguf"), &hxz, &"--compression", &"lz4", &"--block-size", &"256K"])
        .status
        .success());
    let v: serde_json::Value = serde_json::from_slice(&hexz(&[&"inspect", &"--json", &hxz]).stdout).unwrap();
    let blocks = v["block_count"].as_u64().unwrap();
    // Corrupt one byte in each of 200 stored blocks (the data region, spread out).
    let mut bytes = std::fs::read(&hxz).unwrap();
    let data_end = bytes.len() * 9 / 10;
    for k in 0..200 {
        let at = 4096 + k * (data_end - 8192) / 200;
        bytes[at] ^= 0x10;
    }
    std::fs::write(&hxz, &bytes).unwrap();
    let o = hexz(&[&"verify", &"--json", &hxz]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["deep"], true);
    let bad = report["problems"].as_array().unwrap().len();
    assert!(bad >= 150, "only {bad} of about 200 corrupted blocks reported (of {blocks})");
    let o = hexz(&[&"verify", &"--quick", &hxz]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("structure only"), "{}", stderr(&o));
}

/// Run hexz under an address-space limit (1 GiB), like `ulimit -v`.
fn hexz_limited(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -v 1048576; exec \"$0\" \"$@\"").arg(bin());
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("run hexz")
}

#[test]
fn absurd_thread_counts_are_usage_errors_and_many_threads_stay_in_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm.safetensors");
    for n in ["100000", "1000", "-1"] {
        let o = hexz(&[&"store", &src, &tmp.path().join("x.hxz"), &"--threads", &n]);
        assert_eq!(o.status.code(), Some(2), "--threads {n}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    // 256 threads: memory stays within the in-flight budget, under 1 GiB of address space.
    let dst = tmp.path().join("x.hxz");
    let o = hexz_limited(&[&"-q", &"store", &src, &dst, &"--threads", &"256"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(hexz(&[&"-q", &"verify", &dst]).status.success());
}

#[test]
fn usage_errors_exit_2_and_json_commands_print_json_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let src = model("minilm.safetensors");
    let x = tmp.path().join("x.hxz");
    for args in [
        vec!["--block-size", "1K"],
        vec!["--block-size", "65M"],
        vec!["--block-size", "12Q"],
        vec!["--compression", "lz4", "--level", "5"],
        vec!["--compression", "none", "--level", "5"],
        vec!["--metadata", "a=1", "--metadata", "a=2"],
        vec!["--metadata", "=1"],
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"store", &src, &x];
        all.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let o = hexz(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!x.exists());
    }
    for cmd in ["inspect", "verify"] {
        let o = hexz(&[&cmd, &"--json", &tmp.path().join("missing.hxz")]);
        assert_ne!(o.status.code(), Some(0));
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{cmd}: {e}: {:?}", o.stdout));
        assert!(v.is_object(), "{cmd}: {v}");
    }
    let o = hexz(&[&"inspect", &"--json", &src]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["code"], "BAD_MAGIC");
    let o = hexz(&[&"diff", &"--json", &src, &src]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["status"], 10);
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let hxz = tmp.path().join("g.hxz");
    assert!(hexz(&[&"-q", &"store", &model("gemma.gguf"), &hxz, &"--compression", &"lz4"]).status.success());
    for args in
        [format!("extract {} --tensor token_embd.weight", hxz.display()), format!("extract {} -", hxz.display())]
    {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("set -o pipefail; \"{}\" {args} | head -c 100 > /dev/null", bin()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{args}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{args}: {}", stderr(&o));
    }
}

#[test]
fn extract_keeps_runs_of_zeros_sparse() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("zeros.bin");
    let mut data = vec![0u8; 64 << 20];
    data[..4096].fill(7);
    let n = data.len();
    data[n - 10..].fill(9);
    std::fs::write(&src, &data).unwrap();
    let hxz = tmp.path().join("z.hxz");
    assert!(hexz(&[&"-q", &"store", &src, &hxz]).status.success());
    let out = tmp.path().join("back.bin");
    assert!(hexz(&[&"-q", &"extract", &hxz, &out]).status.success());
    assert_eq!(sha(&out), sha(&src));
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.len(), data.len() as u64);
    assert!(meta.blocks() * 512 < meta.len() / 4, "{} bytes allocated for {}", meta.blocks() * 512, meta.len());
}

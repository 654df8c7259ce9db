//! The published JSON Schemas compile in the validators consumers use: Ajv 8
//! in its default strict mode with the 2020-12 draft (installed from the npm
//! registry into target/ajv once), and Python `jsonschema`. The scripts in
//! tests/schema-check/ do the checking; these tests run them and fail with
//! the validators' own messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AJV_PACKAGES: [&str; 2] = ["ajv@8", "ajv-formats@3"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_script(name: &str) -> PathBuf {
    manifest_dir().join("tests/schema-check").join(name)
}

fn schemas_dir() -> PathBuf {
    manifest_dir().join("deploy/schemas")
}

fn run(what: &str, command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An npm prefix under the target directory holding Ajv and ajv-formats;
/// installed only when missing, so later runs do not touch the registry.
fn ajv_prefix() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"));
    let prefix = target.join("ajv");
    let installed = ["ajv", "ajv-formats"].iter().all(|p| {
        prefix
            .join("node_modules")
            .join(p)
            .join("package.json")
            .is_file()
    });
    if !installed {
        let out = run(
            "npm",
            Command::new("npm")
                .args([
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                ])
                .arg(&prefix)
                .args(AJV_PACKAGES),
        );
        assert_success("npm install of Ajv", &out);
    }
    prefix
}

#[test]
fn every_schema_compiles_in_ajv_2020_strict_mode() {
    let prefix = ajv_prefix();
    let out = run(
        "node",
        Command::new("node")
            .arg(check_script("ajv-check.mjs"))
            .arg(schemas_dir())
            .arg(prefix),
    );
    assert_success("Ajv strict check", &out);
}

#[test]
fn every_schema_is_accepted_by_python_jsonschema() {
    let out = run(
        "python3",
        Command::new("python3")
            .arg(check_script("py-check.py"))
            .arg(schemas_dir()),
    );
    assert_success("Python jsonschema check", &out);
}

//! Mechanical checks of the crate rules of DESIGN.md: the dependency rule, sled confined to
//! tributary-state, and a `//!` header on every crate root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stage crates: none of them may depend on another.
const STAGE_CRATES: [&str; 4] = [
    "tributary-fetch",
    "tributary-transform",
    "tributary-write",
    "tributary-state",
];

/// What each crate may depend on among our own crates (normal dependencies).
fn allowed_internal_deps(krate: &str) -> &'static [&'static str] {
    match krate {
        "tributary-spec" | "tributary-mockapi" => &[],
        "tributary-fetch" | "tributary-transform" | "tributary-write" | "tributary-state" => {
            &["tributary-spec"]
        }
        "tributary-engine" => &[
            "tributary-spec",
            "tributary-fetch",
            "tributary-transform",
            "tributary-write",
            "tributary-state",
        ],
        "tributary-api" => &[
            "tributary-spec",
            "tributary-fetch",
            "tributary-transform",
            "tributary-write",
            "tributary-state",
            "tributary-engine",
        ],
        // The binary wires everything together.
        "tributary-cli" => &[
            "tributary-spec",
            "tributary-fetch",
            "tributary-transform",
            "tributary-write",
            "tributary-state",
            "tributary-engine",
            "tributary-api",
            "tributary-mockapi",
        ],
        _ => &[],
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crate_manifests() -> BTreeMap<String, toml::Table> {
    let mut manifests = BTreeMap::new();
    for entry in std::fs::read_dir(workspace_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let name = table["package"]["name"].as_str().unwrap().to_owned();
        assert_eq!(
            dir.file_name().unwrap().to_str().unwrap(),
            name,
            "a crate's folder is named exactly like the crate"
        );
        manifests.insert(name, table);
    }
    manifests
}

fn dependency_names(manifest: &toml::Table, section: &str) -> Vec<String> {
    manifest
        .get(section)
        .and_then(|deps| deps.as_table())
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn internal_dependencies_follow_the_design_rule() {
    let manifests = crate_manifests();
    assert!(
        manifests.len() >= 9,
        "every crate of DESIGN.md exists: {:?}",
        manifests.keys()
    );
    let mut violations = Vec::new();
    for (name, manifest) in &manifests {
        let allowed = allowed_internal_deps(name);
        for dep in dependency_names(manifest, "dependencies") {
            if dep.starts_with("tributary-") && !allowed.contains(&dep.as_str()) {
                violations.push(format!("{name} depends on {dep}"));
            }
        }
        if STAGE_CRATES.contains(&name.as_str()) {
            // Stage crates may not reach each other through dev-dependencies either.
            for dep in dependency_names(manifest, "dev-dependencies") {
                if STAGE_CRATES.contains(&dep.as_str()) {
                    violations.push(format!(
                        "stage crate {name} dev-depends on stage crate {dep}"
                    ));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependency rule broken: {violations:#?}"
    );
}

#[test]
fn only_tributary_state_names_sled() {
    let mut violations = Vec::new();
    for (name, manifest) in crate_manifests() {
        if name == "tributary-state" {
            continue;
        }
        for section in ["dependencies", "dev-dependencies"] {
            if dependency_names(&manifest, section)
                .iter()
                .any(|dep| dep == "sled")
            {
                violations.push(format!("{name} has sled in [{section}]"));
            }
        }
        let mut files = Vec::new();
        rust_files(
            &workspace_root().join("crates").join(&name).join("src"),
            &mut files,
        );
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            if text.contains("sled::") {
                violations.push(format!("{} mentions sled::", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "sled outside tributary-state: {violations:#?}"
    );
}

#[test]
fn every_crate_root_opens_with_a_doc_header() {
    let mut missing = Vec::new();
    for name in crate_manifests().keys() {
        let src = workspace_root().join("crates").join(name).join("src");
        for root in ["lib.rs", "main.rs"] {
            let path = src.join(root);
            if let Ok(text) = std::fs::read_to_string(&path) {
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "crate roots without a //! header: {missing:#?}"
    );
}

//! Every input kept for the fuzz targets (fuzz/corpus/<target>/, crashes found included)
//! replayed through the same entry points as `cargo fuzz` runs them: what once broke a
//! parser stays fixed, and the targets' checks hold on every kept input.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("v2_path", gatehouse::fuzzing::v2_path),
    ("references", gatehouse::fuzzing::references),
    ("ranges", gatehouse::fuzzing::ranges),
    ("scopes", gatehouse::fuzzing::scopes),
    ("authorization", gatehouse::fuzzing::authorization),
    ("token", gatehouse::fuzzing::token),
    ("manifest", gatehouse::fuzzing::manifest),
    ("signature_body", gatehouse::fuzzing::signature_body),
    ("archive", gatehouse::fuzzing::archive),
    ("admin_body", gatehouse::fuzzing::admin_body),
];

#[test]
fn every_kept_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (target, run) in TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{target} has no corpus");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", file.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn every_fuzz_target_is_replayed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry
            .unwrap()
            .path()
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz target {name} is not replayed here"
        );
    }
}

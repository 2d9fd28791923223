//! Embeds every file of `migrations/<dialect>/` and `migrations/<dialect>/snapshots/` into
//! the crate, so the binary carries its schema and the snapshots it is reviewed against.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let root = manifest.join("../../migrations");
    let mut out = String::new();
    for dialect in ["sqlite", "postgres"] {
        let dir = root.join(dialect);
        writeln!(
            out,
            "pub const {}: &[(&str, &str)] = &[",
            dialect.to_uppercase()
        )
        .unwrap();
        embed(&dir, "sql", &mut out);
        out.push_str("];\n");
        writeln!(
            out,
            "pub const {}_SNAPSHOTS: &[(&str, &str)] = &[",
            dialect.to_uppercase()
        )
        .unwrap();
        embed(&dir.join("snapshots"), "snap", &mut out);
        out.push_str("];\n");
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("embedded.rs");
    std::fs::write(dest, out).expect("write embedded.rs");
}

fn embed(dir: &Path, ext: &str, out: &mut String) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let abs = path.canonicalize().expect("canonical path");
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
}

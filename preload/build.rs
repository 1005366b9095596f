//! libhakmem.so carries the unwinder (libgcc's, from `libgcc_eh.a`) instead of needing
//! `libgcc_s.so.1`: the Rust standard library it contains refers to `_Unwind_*` (and the
//! sites mode unwinds stacks), and the shared library would be one more object for the
//! loader to find, map and relocate in every process started under the preload. The static
//! copy's symbols stay hidden: a C++ program's exceptions still go through its own
//! `libgcc_s`.

fn main() {
    let out = std::process::Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .expect("cc must be installed to link libhakmem.so (make test-tools installs gcc)");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = std::path::Path::new(&path)
        .parent()
        .filter(|d| d.join("libgcc_eh.a").exists())
        .unwrap_or_else(|| panic!("libgcc_eh.a not found (cc printed {path:?})"));
    println!("cargo:rustc-link-search=native={}", dir.display());
    // Before the standard library's `-lgcc_s` on the link line, so `--as-needed` drops that.
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    println!("cargo:rerun-if-changed=build.rs");
}

//! `make hardening`: how hakmem (default and checked mode), glibc, mimalloc, jemalloc and
//! tcmalloc end each heap-bug case of `microbench/c/hardening.c`, as a Markdown table.

fn main() {
    let result = microbench::hardening::build().and_then(|exe| {
        let allocators = microbench::native::allocators()?;
        microbench::hardening::table(&exe, &allocators)
    });
    match result {
        Ok(t) => print!("{}", t.markdown()),
        Err(e) => {
            eprintln!("hardening: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    println!("hakprof: not built yet (see issue 5)");
}

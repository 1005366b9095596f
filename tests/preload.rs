//! Real programs under `LD_PRELOAD=libhakmem.so`: each must print exactly what it prints
//! without the preload, and its `HAKMEM_STATS_JSON` must show that hakmem served it.

mod common;
use common::preload::*;
use std::path::Path;
use std::process::{Command, Stdio};

fn python() -> String {
    // Resolve the real interpreter (pyenv's `python3` is a shell script).
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn python_threaded_churn_runs_identically_under_hakmem() {
    let dir = tmpdir("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/churn.py");
    let mk = || {
        let mut c = Command::new(python());
        // Send every object through malloc instead of pymalloc's own arenas.
        c.arg(&script).env("PYTHONMALLOC", "malloc");
        c
    };
    let plain = run_plain(mk());
    let (pre, json) = run_preloaded(mk(), &dir);
    assert_same_and_served("python3", &plain, &pre, &json, 100_000);
    assert!(
        stat(&json, "pool", "heaps") >= 2,
        "python's threads got heaps: {json}"
    );
}

#[test]
fn sqlite_200k_rows_with_indexes_and_join_runs_identically_under_hakmem() {
    let dir = tmpdir("sqlite");
    let sql =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sqlite.sql")).unwrap();
    let run = |preload: bool| {
        let db = dir.join(if preload { "pre.db" } else { "plain.db" });
        let _ = std::fs::remove_file(&db);
        let mut c = Command::new("sqlite3");
        c.arg(&db).stdin(Stdio::piped());
        if preload {
            c.env("LD_PRELOAD", preload_lib())
                .env("HAKMEM_STATS_JSON", dir.join("stats-%p.json"));
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sqlite3");
        let pid = child.id();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&sql).unwrap();
        (child.wait_with_output().unwrap(), pid)
    };
    let (plain, _) = run(false);
    let (pre, pid) = run(true);
    let json =
        std::fs::read_to_string(dir.join(format!("stats-{pid}.json"))).expect("sqlite stats");
    assert_same_and_served("sqlite3", &plain, &pre, &json, 100_000);
}

#[test]
fn sort_of_a_large_file_runs_identically_under_hakmem() {
    let dir = tmpdir("sort");
    let input = dir.join("input.txt");
    {
        // ~100 MB of pseudo-random lines.
        let mut s = String::with_capacity(105 << 20);
        let mut x: u64 = 0x1234_5678;
        for i in 0..2_500_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(&format!(
                "{:016x} line {i} {}\n",
                x,
                "z".repeat((x % 40) as usize)
            ));
        }
        std::fs::write(&input, s).unwrap();
    }
    let mk = || {
        let mut c = Command::new("sort");
        c.arg(&input).env("LC_ALL", "C");
        c
    };
    let plain = run_plain(mk());
    let (pre, json) = run_preloaded(mk(), &dir);
    assert_same_and_served("sort", &plain, &pre, &json, 5);
    // GNU sort reads the file into one large buffer: a big block of ours.
    assert!(
        stat(&json, "big", "allocs") > 0,
        "sort's buffer was a big block: {json}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn c_abi_bad_input_fork_and_threads_under_hakmem() {
    let dir = tmpdir("abi");
    let exe = build_c("abi", &dir);
    // hakmem's answers, not glibc's (glibc 2.36 accepts aligned_alloc(24, ..)): no plain run.
    let (pre, json) = run_preloaded(Command::new(&exe), &dir);
    assert!(
        pre.status.success(),
        "abi under hakmem: {}",
        String::from_utf8_lossy(&pre.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&pre.stdout), "ok 20\n");
    assert!(stat(&json, "pool", "allocs") >= 200_000, "{json}");

    let mut c = Command::new(&exe);
    c.arg("free-stack").env("LD_PRELOAD", preload_lib());
    let out = c.output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("hakmem: free(): invalid pointer 0x"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn two_c_call_sites_get_two_sites_and_bigcache_hits_for_both() {
    let dir = tmpdir("two-sites");
    let exe = build_c("two_sites", &dir);
    let plain = run_plain(Command::new(&exe));
    let (pre, json) = run_preloaded(Command::new(&exe), &dir);
    assert_same_and_served("two_sites", &plain, &pre, &json, 100);
    // Sites that made 2 MiB allocations (hist bucket 2) and got BigCache hits.
    let v = parse(&json);
    let with_hits: Vec<&serde_json::Value> = v["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .filter(|s| s["hist"][2].as_u64() > Some(0) && s["bigcache_hits"].as_u64() > Some(0))
        .collect();
    assert_eq!(with_hits.len(), 2, "two sites with BigCache hits: {json}");
    assert_ne!(with_hits[0]["site"], with_hits[1]["site"]);
    assert!(stat(&json, "bigcache", "hits") >= 90, "{json}");
}

/// Total allocations over every stats file in `dir` (programs that fork and exec write one
/// per process).
fn total_allocations(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("stats-"))
        .map(|e| {
            let j = std::fs::read_to_string(e.path()).unwrap();
            stat(&j, "pool", "allocs") + stat(&j, "big", "allocs")
        })
        .sum()
}

#[test]
fn gcc_compiles_the_same_object_under_hakmem() {
    let dir = tmpdir("gcc");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/abi.c");
    let compile = |out: &str, preload: bool| {
        let mut c = Command::new("gcc");
        c.args(["-O2", "-g0", "-c", "-o"])
            .arg(dir.join(out))
            .arg(&src);
        if preload {
            c.env("LD_PRELOAD", preload_lib())
                .env("HAKMEM_STATS_JSON", dir.join("stats-%p.json"));
        }
        let o = c.output().expect("gcc");
        assert!(
            o.status.success(),
            "gcc (preload {preload}): {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    compile("plain.o", false);
    compile("pre.o", true);
    let (a, b) = (
        std::fs::read(dir.join("plain.o")).unwrap(),
        std::fs::read(dir.join("pre.o")).unwrap(),
    );
    assert!(!a.is_empty() && a == b, "object files differ");
    let n = total_allocations(&dir);
    assert!(
        n > 10_000,
        "gcc's processes made only {n} allocations through hakmem"
    );
}

#[test]
fn git_init_add_commit_log_under_hakmem() {
    let dir = tmpdir("git");
    let run_git = |repo: &Path, preload: bool| -> String {
        let _ = std::fs::remove_dir_all(repo);
        std::fs::create_dir_all(repo).unwrap();
        for i in 0..50 {
            std::fs::write(
                repo.join(format!("f{i}.txt")),
                format!("file {i}\n").repeat(i + 1),
            )
            .unwrap();
        }
        let mut log = String::new();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "."],
            &["commit", "-q", "-m", "first"],
            &["log", "--stat"],
        ] {
            let mut c = Command::new("git");
            c.args(args)
                .current_dir(repo)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
                .env("HOME", &dir)
                .env("GIT_CONFIG_NOSYSTEM", "1");
            if preload {
                c.env("LD_PRELOAD", preload_lib())
                    .env("HAKMEM_STATS_JSON", dir.join("stats-%p.json"));
            }
            let o = c.output().expect("git");
            assert!(
                o.status.success(),
                "git {args:?} (preload {preload}): {}",
                String::from_utf8_lossy(&o.stderr)
            );
            log.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        log
    };
    let plain = run_git(&dir.join("plain"), false);
    let pre = run_git(&dir.join("pre"), true);
    assert!(
        plain.contains("first") && plain == pre,
        "git output differs:\n{plain}\n---\n{pre}"
    );
    assert!(total_allocations(&dir) > 1000);
}

/// Installs a Debian package when its program is missing (the CI script does the same).
fn ensure_program(program: &str, package: &str) {
    if Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return;
    }
    let st = Command::new("sh")
        .args(["-c", &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}")])
        .status()
        .expect("sh");
    assert!(
        st.success(),
        "{program} is missing and `apt-get install {package}` failed"
    );
}

/// redis-server under hakmem, on 127.0.0.1 only, driven by redis-cli (exact answers) and a
/// bounded redis-benchmark run.
#[test]
fn redis_server_serves_a_benchmark_under_hakmem() {
    ensure_program("redis-server", "redis-server");
    let dir = tmpdir("redis");
    let port = (20000 + std::process::id() % 20000).to_string();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .env("LD_PRELOAD", preload_lib())
        .env("HAKMEM_STATS_JSON", dir.join("stats-%p.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-server");
    let cli = |args: &[&str]| -> String {
        let o = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let start = std::time::Instant::now();
    while cli(&["PING"]) != "PONG" {
        assert!(start.elapsed().as_secs() < 10, "redis-server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Exact answers first.
    assert_eq!(cli(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["APPEND", "greeting", " world"]), "11");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    for i in 0..50 {
        cli(&["RPUSH", "list", &"x".repeat(i * 100)]);
    }
    assert_eq!(cli(&["LLEN", "list"]), "50");
    assert_eq!(cli(&["STRLEN", "greeting"]), "11");
    // Then load, bounded in requests and time.
    let bench = Command::new("timeout")
        .args([
            "60",
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-n",
            "20000",
            "-c",
            "8",
            "-t",
            "set,get,lpush,lpop",
            "-q",
        ])
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success() && text.matches("requests per second").count() >= 4,
        "{text}"
    );
    assert_eq!(
        cli(&["GET", "greeting"]),
        "hello world",
        "data survived the load"
    );
    cli(&["SHUTDOWN", "NOSAVE"]);
    let st = server.wait().unwrap();
    assert!(st.success(), "redis-server exited with {st}");
    let n = total_allocations(&dir);
    assert!(n > 10_000, "redis made only {n} allocations through hakmem");
}

/// Fork while another thread holds the learner's locks, in the modes whose learner takes
/// per-site locks: every child must finish (a child that inherited a held lock hangs and
/// is killed by its alarm).
#[test]
fn fork_in_learning_and_research_modes_never_hangs_a_child() {
    let dir = tmpdir("fork-learning");
    let exe = build_c("fork_learning", &dir);
    for mode in ["learning", "research", "balanced"] {
        let mut c = Command::new(&exe);
        c.arg("300").env("HAKMEM_MODE", mode);
        let (out, json) = run_preloaded(c, &dir);
        assert!(
            out.status.success(),
            "HAKMEM_MODE={mode}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 300\n");
        assert!(stat(&json, "big", "allocs") > 0, "{json}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A thread that allocates in its last pthread key destructor round must not leak a heap:
/// when it allocated before (a late heap), when its first allocation is in that round, and
/// whichever key's destructor runs first.
#[test]
fn allocating_in_thread_exit_destructors_keeps_heaps_bounded() {
    let dir = tmpdir("late-alloc");
    let exe = build_c("late_alloc", &dir);
    // The first allocation in the last round leaves an ordinary-looking heap, found by the
    // periodic check of every attached heap (every 64 heaps made, at least).
    for (mode, bound) in [("", 8), ("first", 80), ("before", 8)] {
        let mut c = Command::new(&exe);
        c.args(["1000", mode]);
        let (out, json) = run_preloaded(c, &dir);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 1000\n");
        let heaps = stat(&json, "pool", "heaps");
        assert!(
            heaps <= bound,
            "mode {mode:?}: 1000 threads, one live at a time, made {heaps} heaps: {json}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child forked from a thread's last destructor round keeps that thread's heap for that
/// thread: a new thread of the child gets a heap of its own.
#[test]
fn after_fork_each_thread_of_the_child_has_its_own_heap() {
    let dir = tmpdir("fork-late");
    let exe = build_c("fork_late", &dir);
    let out = Command::new(&exe)
        .env("LD_PRELOAD", preload_lib())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "different heap\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under a shell, every process reports (`HAKMEM_STATS=1`) and each report names its
/// program and pid; `HAKMEM_STATS=<program>` keeps only that program's report.
#[test]
fn each_exit_report_names_its_process_and_a_filter_keeps_one_program() {
    let run = |value: &str| {
        let out = Command::new("sh")
            .args(["-c", "/bin/true; /bin/echo hi"])
            .env("LD_PRELOAD", preload_lib())
            .env("HAKMEM_STATS", value)
            .output()
            .expect("run sh");
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let reports: Vec<(String, String)> = err
            .lines()
            .filter_map(|l| {
                let rest = l.split(" stats for ").nth(1)?;
                let (name, rest) = rest.split_once(" (pid ")?;
                let pid = rest.split(',').next()?;
                Some((name.to_string(), pid.to_string()))
            })
            .collect();
        (reports, err)
    };
    let (all, err) = run("1");
    assert!(all.len() >= 2, "one report per process: {err}");
    assert!(
        all.iter().any(|(n, _)| n == "true") && all.iter().any(|(n, _)| n == "echo"),
        "{err}"
    );
    let mut pids: Vec<&String> = all.iter().map(|(_, p)| p).collect();
    pids.dedup();
    assert_eq!(pids.len(), all.len(), "each report its own pid: {err}");
    assert!(
        err.contains("peak RSS") && err.contains("page faults"),
        "{err}"
    );
    let (only, err) = run("true");
    assert_eq!(only.len(), 1, "{err}");
    assert_eq!(only[0].0, "true");
}

/// In the sites mode the exit report adds the heap (live at exit, at the peak), the
/// allocations by size, and the top sites by return address, placed by the loader: `sort`
/// of a small input allocates from libc and from its own code.
#[test]
fn the_sites_mode_exit_report_shows_the_heap_sizes_and_placed_sites() {
    let out = Command::new("sh")
        .args(["-c", "printf 'b\\na\\nc\\n' | sort"])
        .env("LD_PRELOAD", preload_lib())
        .env("HAKMEM_SITES", "1")
        .env("HAKMEM_STATS", "sort")
        .output()
        .expect("run sort");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\nc\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stats for sort"), "{err}");
    let heap = err
        .lines()
        .find(|l| l.trim_start().starts_with("heap     :"));
    assert!(heap.is_some_and(|l| l.contains("at the peak")), "{err}");
    let sizes = err
        .lines()
        .find(|l| l.trim_start().starts_with("sizes    :"));
    assert!(sizes.is_some_and(|l| l.contains('≤')), "{err}");
    // Each top site: its return address and the module that holds it.
    let tops: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.contains("top sites (all blocks"))
        .skip(1)
        .collect();
    assert!(!tops.is_empty(), "{err}");
    assert!(
        tops.iter()
            .all(|l| l.contains(" 0x") && l.trim_end().ends_with(')')),
        "{err}"
    );
}

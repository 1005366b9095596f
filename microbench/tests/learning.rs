//! The learning layer end to end, each configuration in its own child process (the
//! configuration is read once per process, from the environment).

#[path = "../../tests/common/mod.rs"]
mod common;

const CHILD_ENV: &str = "HAKMEM_LEARNING_CHILD";

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

fn minor_faults() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_minflt as u64
}

/// Child entry: runs one scenario through `Hakmem` and prints
/// `faults <n>` and the stats JSON.
#[test]
fn child_entry() {
    let Ok(what) = std::env::var(CHILD_ENV) else {
        return;
    };
    let scenario = microbench::scenarios::Scenario::parse(&what).expect("scenario name");
    let before = hakmem::stats::snapshot();
    let f0 = minor_faults();
    let repeat: usize = std::env::var("HAKMEM_LEARNING_REPEAT").map_or(1, |v| v.parse().unwrap());
    for _ in 0..repeat {
        scenario.run(&GLOBAL);
    }
    let faults = minor_faults() - f0;
    let after = hakmem::stats::snapshot();
    println!("\nfaults {faults}"); // after the harness's "test child_entry ... "
    println!("mmap {}", after.syscalls.mmap - before.syscalls.mmap);
    println!("hits {}", after.bigcache.hits - before.bigcache.hits);
    println!("misses {}", after.bigcache.misses - before.bigcache.misses);
    println!("json {}", hakmem::stats::json());
}

struct Run {
    faults: u64,
    mmap: u64,
    hits: u64,
    misses: u64,
    json: String,
}

fn run(scenario: &str, env: &[(&str, &str)]) -> Run {
    let out = common::run_test_in_child("child_entry", CHILD_ENV, scenario, env);
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    Run {
        faults: get("faults").parse().unwrap(),
        mmap: get("mmap").parse().unwrap(),
        hits: get("hits").parse().unwrap(),
        misses: get("misses").parse().unwrap(),
        json: get("json"),
    }
}

#[test]
fn vm_scenario_default_mode_hits_the_bigcache_and_halves_faults_and_mmaps() {
    let default = run("vm", &[]);
    let minimal = run("vm", &[("HAKMEM_MODE", "minimal")]);
    let rate = default.hits as f64 / (default.hits + default.misses) as f64;
    assert!(
        rate >= 0.90,
        "BigCache hit rate {rate:.3} ({} hits, {} misses)",
        default.hits,
        default.misses
    );
    assert!(
        parse(&default.json)["mode"] == "balanced",
        "{}",
        default.json
    );
    assert!(parse(&minimal.json)["mode"] == "minimal" && minimal.hits == 0);
    assert!(
        default.faults * 2 <= minimal.faults,
        "page faults: default {} vs minimal {}",
        default.faults,
        minimal.faults
    );
    assert!(
        default.mmap * 2 <= minimal.mmap,
        "mmap calls: default {} vs minimal {}",
        default.mmap,
        minimal.mmap
    );
    eprintln!(
        "vm: default {} faults, {} mmap, hit rate {:.3}; minimal {} faults, {} mmap",
        default.faults, default.mmap, rate, minimal.faults, minimal.mmap
    );
}

#[test]
fn kill_switches_and_bad_values_take_effect() {
    let no_cache = run("vm", &[("HAKMEM_DISABLE_BIGCACHE", "1")]);
    assert_eq!(no_cache.hits, 0);
    assert!(
        parse(&no_cache.json)["switches"]["bigcache"] == false,
        "{}",
        no_cache.json
    );
    let no_elo = run("vm", &[("HAKMEM_DISABLE_ELO", "1")]);
    assert!(parse(&no_elo.json)["switches"]["elo"] == false);
    assert!(
        no_elo.hits > 90,
        "fixed 2 MiB threshold still caches 2 MiB blocks"
    );
    let out = common::run_test_in_child(
        "child_entry",
        CHILD_ENV,
        "json",
        &[("HAKMEM_MODE", "ludicrous")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("HAKMEM_MODE")).collect();
    assert_eq!(warnings.len(), 1, "one warning line: {err}");
    assert!(warnings[0].contains("minimal|fast|balanced|learning|research"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("json "))
        .unwrap_or_else(|| panic!("no json line in {stdout}"));
    assert_eq!(parse(json)["mode"], "balanced");
}

fn parse(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("stats JSON: {e}: {json}"))
}

/// `key` of every strategy on the ELO leaderboard of a stats JSON.
fn elo_values(json: &str, key: &str) -> Vec<f64> {
    parse(json)["elo"]
        .as_array()
        .expect("elo leaderboard")
        .iter()
        .map(|s| s[key].as_f64().expect(key))
        .collect()
}

#[test]
fn research_mode_rates_strategies_and_pulls_ucb1_arms() {
    // 80 vm runs: 8000 big allocations, every one selected and sampled in research mode.
    let r = run(
        "vm",
        &[
            ("HAKMEM_MODE", "research"),
            ("HAKMEM_LEARNING_REPEAT", "80"),
        ],
    );
    let ratings = elo_values(&r.json, "rating");
    let games: f64 = ["wins", "losses", "draws"]
        .iter()
        .map(|k| elo_values(&r.json, k).iter().sum::<f64>())
        .sum();
    assert_eq!(ratings.len(), 12, "{}", r.json);
    assert!(games > 0.0, "ELO played games: {}", r.json);
    // Every call is a sampled decision in research mode: exploration reaches most strategies.
    let sampled = elo_values(&r.json, "samples")
        .iter()
        .filter(|&&n| n > 0.0)
        .count();
    assert!(sampled >= 6, "strategies sampled: {sampled}: {}", r.json);
    // Once the 2 MiB block is hot it stays cached under any threshold (hot → keep), so the
    // strategies cost the same here and their games are mostly draws: no rating runs away.
    assert!(
        ratings.iter().all(|&x| (x - 1500.0).abs() < 150.0),
        "{}",
        r.json
    );
    assert!(r.hits >= 7900, "hot block kept: {} hits", r.hits);
    let pulls: f64 = parse(&r.json)["ucb1"]["sites"]
        .as_array()
        .expect("ucb1 sites")
        .iter()
        .flat_map(|s| s["pulls"].as_array().expect("pulls").clone())
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!(pulls >= 6.0, "UCB1 tried its arms: {}", r.json);
}

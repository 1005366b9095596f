//! The events hakprof counts and how it decides, per event, whether this host has it.
//! A hardware event that fails to open is *unavailable*, with its errno and a sentence
//! saying why — never a zero.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Cycles,
    Instructions,
    BranchMisses,
    L1dReadMisses,
    LlcReadMisses,
    TaskClock,
    PageFaults,
    ContextSwitches,
}

impl EventKind {
    pub const HARDWARE: [EventKind; 5] = [
        EventKind::Cycles,
        EventKind::Instructions,
        EventKind::BranchMisses,
        EventKind::L1dReadMisses,
        EventKind::LlcReadMisses,
    ];
    pub const SOFTWARE: [EventKind; 3] = [
        EventKind::TaskClock,
        EventKind::PageFaults,
        EventKind::ContextSwitches,
    ];

    pub fn all() -> impl Iterator<Item = EventKind> {
        Self::HARDWARE.into_iter().chain(Self::SOFTWARE)
    }

    pub fn name(self) -> &'static str {
        match self {
            EventKind::Cycles => "cycles",
            EventKind::Instructions => "instructions",
            EventKind::BranchMisses => "branch-misses",
            EventKind::L1dReadMisses => "L1-dcache-load-misses",
            EventKind::LlcReadMisses => "LLC-load-misses",
            EventKind::TaskClock => "task-clock",
            EventKind::PageFaults => "page-faults",
            EventKind::ContextSwitches => "context-switches",
        }
    }

    pub fn is_hardware(self) -> bool {
        Self::HARDWARE.contains(&self)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an event could not be opened, in words, with a hint where one helps.
pub fn explain(errno: i32, paranoid: Option<i32>) -> String {
    match errno {
        libc::ENOENT => "ENOENT: the kernel has no such event here (no hardware PMU exposed, as on most VMs)".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP: the PMU does not support this event".into(),
        libc::ENODEV => "ENODEV: no PMU device for this event".into(),
        libc::EACCES | libc::EPERM => format!(
            "{}: permission denied by kernel.perf_event_paranoid ({}); run as root, or lower it: sudo sysctl kernel.perf_event_paranoid=1",
            if errno == libc::EACCES { "EACCES" } else { "EPERM" },
            paranoid.map_or("unknown".into(), |p| p.to_string())
        ),
        libc::EINVAL => "EINVAL: the kernel rejected the event's attributes".into(),
        e => format!("errno {e}: {}", std::io::Error::from_raw_os_error(e)),
    }
}

pub fn perf_event_paranoid() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What opening each event gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Availability {
    pub available: Vec<EventKind>,
    /// (event, errno, explanation)
    pub unavailable: Vec<(EventKind, i32, String)>,
}

impl Availability {
    /// Tries every event with `try_open` (the real one opens a perf counter; tests inject errnos).
    pub fn probe(mut try_open: impl FnMut(EventKind) -> Result<(), i32>) -> Availability {
        let paranoid = perf_event_paranoid();
        let mut a = Availability {
            available: Vec::new(),
            unavailable: Vec::new(),
        };
        for ev in EventKind::all() {
            match try_open(ev) {
                Ok(()) => a.available.push(ev),
                Err(e) => a.unavailable.push((ev, e, explain(e, paranoid))),
            }
        }
        a
    }

    pub fn has(&self, ev: EventKind) -> bool {
        self.available.contains(&ev)
    }

    /// Whether every hardware event is there (else hakprof falls back for the missing ones).
    pub fn hardware_complete(&self) -> bool {
        EventKind::HARDWARE.iter().all(|e| self.has(*e))
    }

    /// One plain paragraph for the user, said once per run.
    pub fn notice(&self) -> Option<String> {
        if self.unavailable.is_empty() {
            return None;
        }
        let mut s = String::from("hakprof: these perf events are unavailable on this host and are reported as unavailable (never 0):\n");
        for (ev, _, why) in &self.unavailable {
            s.push_str(&format!("  - {ev}: {why}\n"));
        }
        if !self.hardware_complete() {
            s.push_str("  Falling back to: software counters (task-clock, page-faults, context-switches), TSC-based cycles calibrated against the monotonic clock, and cache misses simulated by valgrind (columns labelled \"sim\").\n");
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hw_errno(errno: i32) -> Availability {
        Availability::probe(|ev| if ev.is_hardware() { Err(errno) } else { Ok(()) })
    }

    #[test]
    fn enoent_eacces_and_eopnotsupp_each_explain_themselves_and_fall_back() {
        let a = with_hw_errno(libc::ENOENT);
        assert!(!a.hardware_complete());
        assert_eq!(
            a.available,
            EventKind::SOFTWARE.to_vec(),
            "software counters stay"
        );
        let n = a.notice().unwrap();
        assert!(
            n.contains("cycles: ENOENT") && n.contains("no hardware PMU"),
            "{n}"
        );
        assert!(n.contains("simulated by valgrind"), "{n}");

        let a = with_hw_errno(libc::EACCES);
        let n = a.notice().unwrap();
        assert!(
            n.contains("EACCES") && n.contains("perf_event_paranoid") && n.contains("sysctl"),
            "{n}"
        );

        let a = with_hw_errno(libc::EOPNOTSUPP);
        assert!(a.notice().unwrap().contains("EOPNOTSUPP"));
        assert_eq!(a.unavailable.len(), 5);
    }

    #[test]
    fn a_host_with_every_event_says_nothing() {
        let a = Availability::probe(|_| Ok(()));
        assert!(a.hardware_complete() && a.notice().is_none());
    }
}

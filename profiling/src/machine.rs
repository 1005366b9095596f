//! What the report ran on.

use microbench::machine as m;

#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub date: String,
}

pub fn describe() -> Machine {
    Machine {
        cpu: m::cpu_model(),
        cores: m::cores(),
        kernel: m::kernel(),
        date: m::date("+%Y-%m-%d %H:%M UTC"),
    }
}

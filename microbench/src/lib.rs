//! Probes shared by the benches and the profiler (filled by the micro-benchmark issue).

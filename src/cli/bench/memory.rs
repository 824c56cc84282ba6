//! The process's peak resident set size (`VmHWM`), and resetting it so that one stage's peak can be
//! read on its own.

/// Peak resident set size in MiB (`VmHWM` of `/proc/self/status`), `None` off Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak to the current RSS (Linux's `clear_refs` value 5), so that the next
/// [`peak_rss_mb`] is the peak since now; returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A peak for JSON: the number, or `null` when unknown.
pub fn json_mb(mb: Option<f64>) -> String {
    mb.map_or("null".to_string(), |r| format!("{r:.1}"))
}

//! A progress bar on standard error, fed by polling the library's counters.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapshot_store::WriteProgress;

/// Draws `WriteProgress` until dropped.
pub struct ProgressView {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressView {
    /// Starts drawing when standard error is a terminal and `enabled`; otherwise does nothing.
    pub fn start(progress: Arc<WriteProgress>, enabled: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return ProgressView { stop, thread: None };
        }
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}\n  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut upload = UploadRate::default();
            while !flag.load(Ordering::Relaxed) {
                let total = WriteProgress::get(&progress.bytes_total);
                if total == 0 {
                    bar.set_message(format!(
                        "scanning: {} entries",
                        WriteProgress::get(&progress.entries_scanned)
                    ));
                } else {
                    bar.set_length(total);
                    bar.set_position(WriteProgress::get(&progress.bytes_done).min(total));
                    bar.set_message(format!(
                        "files {}/{}  {}{}",
                        WriteProgress::get(&progress.files_done),
                        WriteProgress::get(&progress.files_total),
                        progress.current.lock(),
                        upload.line(&progress)
                    ));
                }
                bar.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        ProgressView {
            stop,
            thread: Some(thread),
        }
    }
}

/// The upload line of a write to a remote store: bytes acknowledged of those queued, the rate
/// since the first byte was queued, and the time left at that rate.
#[derive(Default)]
struct UploadRate {
    since: Option<std::time::Instant>,
}

impl UploadRate {
    fn line(&mut self, progress: &WriteProgress) -> String {
        let queued = WriteProgress::get(&progress.upload.queued);
        if queued == 0 {
            return String::new();
        }
        let sent = WriteProgress::get(&progress.upload.sent);
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        let secs = since.elapsed().as_secs_f64().max(0.001);
        let rate = sent as f64 / secs;
        let left = if rate > 0.0 {
            format!("{:.0}s", (queued - sent.min(queued)) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "\n  uploaded {} of {} ({}/s, ETA {left})",
            indicatif::HumanBytes(sent),
            indicatif::HumanBytes(queued),
            indicatif::HumanBytes(rate as u64)
        )
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

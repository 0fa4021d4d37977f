//! Download progress: one bar per download when stdout is a terminal, plain log
//! lines otherwise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pkgrelay_core::fetch::DownloadProgress;
use pkgrelay_core::steps::Observer;
use std::io::IsTerminal;

pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    pub fn new() -> Bars {
        let multi =
            std::io::stdout().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Bars { multi }
    }
}

struct Bar(ProgressBar);

impl DownloadProgress for Bar {
    fn length(&mut self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&mut self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn restart(&mut self) {
        self.0.set_position(0);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl Observer for Bars {
    fn download(&self, label: &str) -> Box<dyn DownloadProgress> {
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                        .expect("valid template")
                        .progress_chars("=> "),
                );
                bar.set_message(label.to_owned());
                Box::new(Bar(bar))
            }
            None => {
                tracing::info!("downloading {label}");
                Box::new(())
            }
        }
    }
}

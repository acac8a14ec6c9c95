//! The log writer: lines are formatted where they happen and written to stdout by a thread of
//! its own, in batches.
//!
//! A line does not wake the writer. The first line after a quiet spell does (one `unpark`); the
//! writer then waits [`BATCH_WINDOW`], writes everything queued with one write, and keeps doing
//! so while lines keep coming, so under load a log line costs its formatting and a queue slot,
//! not a wake-up and a write each (a wake per line, as with `tracing-appender`, cost a
//! single-core gateway with access lines ~17% of its throughput). Warnings and errors are
//! written at once.
//!
//! Never lossy: when the queue is full, the logging thread waits for the writer. Dropping the
//! [`Flush`] guard writes out what is still queued.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first of a batch: the most a line waits.
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Lines the queue holds (allocated whole at start: 32 bytes a slot).
const QUEUE_LINES: usize = 4_096;

/// How long dropping the [`Flush`] guard waits for the queued lines to be written: stdout
/// blocked for good (a reader that stopped reading) must not keep the process from exiting.
pub const FLUSH_WAIT: Duration = Duration::from_secs(2);

enum Msg {
    Line(Vec<u8>),
    Stop,
}

struct Shared {
    /// Set by the writer before it parks with nothing queued; the line that finds it set wakes
    /// the writer.
    idle: AtomicBool,
    /// Set with a warning or error queued: the writer writes without gathering.
    urgent: AtomicBool,
    writer: std::thread::Thread,
}

/// Where the formatter writes (a [`MakeWriter`]): cheap to clone, one per subscriber.
#[derive(Clone)]
pub struct Lines {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

/// Writes out what is queued and stops the writer when dropped.
#[must_use]
pub struct Flush {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    wait: Duration,
}

/// Starts the writer thread over `out`, gathering lines for `window` after the first of a
/// batch ([`BATCH_WINDOW`] outside tests); the guard waits up to `wait` ([`FLUSH_WAIT`]) for
/// the rest to be written.
pub fn start<W: Write + Send + 'static>(
    out: W,
    window: Duration,
    wait: Duration,
) -> std::io::Result<(Lines, Flush)> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_LINES);
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Arc<Shared>>(1);
    let thread = std::thread::Builder::new()
        .name("switchboard-log".into())
        .spawn(move || {
            let shared = Arc::new(Shared {
                idle: AtomicBool::new(false),
                urgent: AtomicBool::new(false),
                writer: std::thread::current(),
            });
            if ready_tx.send(Arc::clone(&shared)).is_ok() {
                run(out, &rx, &shared, window);
            }
        })?;
    let shared = ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("the log writer thread did not start"))?;
    let lines = Lines {
        tx: tx.clone(),
        shared: Arc::clone(&shared),
    };
    Ok((
        lines,
        Flush {
            tx,
            shared,
            thread: Some(thread),
            wait,
        },
    ))
}

/// The writer: park until a line comes, gather for `window` (or until a warning or the queue
/// filling cuts it short), write the batch, repeat; on [`Msg::Stop`], write what is left and
/// end.
fn run<W: Write>(out: W, rx: &Receiver<Msg>, shared: &Shared, window: Duration) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    loop {
        // Announce idleness, then check once more: a line sent before the flag was visible
        // is seen here, one sent after it unparks us.
        shared.idle.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if rx.is_empty() {
            // Woken by the next line; the timeout only notices every sender gone (the guard
            // gave up on a stuck output) so that the thread ends.
            std::thread::park_timeout(Duration::from_secs(1));
        }
        shared.idle.store(false, Ordering::SeqCst);
        // A warning sent after this swap unparks the gathering below (or before it: the
        // token makes it return at once).
        if !shared.urgent.swap(false, Ordering::SeqCst) && !rx.is_empty() {
            std::thread::park_timeout(window);
        }
        let mut stop = false;
        loop {
            match rx.try_recv() {
                Ok(Msg::Line(line)) => {
                    let _ = out.write_all(&line);
                }
                Ok(Msg::Stop) => stop = true,
                Err(TryRecvError::Disconnected) => {
                    stop = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let _ = out.flush();
        if stop {
            return;
        }
    }
}

impl Lines {
    /// Queues one whole line (ending in a newline), as an info line.
    pub fn send_line(&self, line: Vec<u8>) {
        self.send(line, false);
    }

    fn send(&self, line: Vec<u8>, urgent: bool) {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                // Full: the writer is busy or gathering; make it write now, then wait for room.
                self.shared.writer.unpark();
                let _ = self.tx.send(msg);
                return;
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
        // Pairs with the writer's fence: it sees this line, or this sees it idle.
        fence(Ordering::SeqCst);
        if urgent {
            self.shared.urgent.store(true, Ordering::SeqCst);
            self.shared.writer.unpark();
        } else if self.shared.idle.swap(false, Ordering::SeqCst) {
            self.shared.writer.unpark();
        }
    }
}

/// One formatted line (the formatter writes each event whole, with one `write_all`).
pub struct Line<'a> {
    lines: &'a Lines,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines.send(buf.to_vec(), self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            lines: self,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Line {
            lines: self,
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

impl Drop for Flush {
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + self.wait;
        // A full queue with the writer stuck makes even the stop wait: bounded too.
        let _ = self.tx.send_deadline(Msg::Stop, deadline);
        self.shared.urgent.store(true, Ordering::SeqCst);
        self.shared.writer.unpark();
        let Some(t) = self.thread.take() else { return };
        while !t.is_finished() {
            if std::time::Instant::now() >= deadline {
                eprintln!(
                    "switchboard: log lines not written within {:?} of stopping (stdout blocked?)",
                    self.wait
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = t.join();
    }
}

impl std::fmt::Debug for Flush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flush").finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A `Write` into a shared buffer the test reads back, through a pipe-like channel.
    #[derive(Clone)]
    pub struct Collect(pub crossbeam_channel::Sender<Vec<u8>>);

    impl Write for Collect {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    pub fn collected(rx: &crossbeam_channel::Receiver<Vec<u8>>) -> String {
        String::from_utf8(rx.try_iter().flatten().collect()).unwrap()
    }

    #[test]
    fn every_line_is_written_in_order_and_the_guard_flushes_the_rest() {
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let (lines, flush) = start(Collect(out_tx), BATCH_WINDOW, FLUSH_WAIT).unwrap();
        // More than the queue holds: senders wait for the writer, nothing is dropped.
        let n = QUEUE_LINES * 3;
        let senders: Vec<_> = (0..2)
            .map(|t| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..n / 2 {
                        let mut w = lines.make_writer();
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        drop(flush);
        let text = collected(&out_rx);
        let mut next = [0usize; 2];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let t: usize = t.parse().unwrap();
            assert_eq!(
                i.parse::<usize>().unwrap(),
                next[t],
                "thread {t}'s lines in order"
            );
            next[t] += 1;
        }
        assert_eq!(next, [n / 2, n / 2], "every line written");
    }

    #[test]
    fn a_single_line_is_written_without_more_coming() {
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let (lines, _flush) = start(Collect(out_tx), BATCH_WINDOW, FLUSH_WAIT).unwrap();
        for round in 0..3 {
            lines
                .make_writer()
                .write_all(format!("quiet {round}\n").as_bytes())
                .unwrap();
            // The writer is parked between lines; this one must still come out (within the
            // batch window; the wait is generous for a loaded machine).
            let got = out_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), format!("quiet {round}\n"));
        }
    }

    #[test]
    fn a_warning_cuts_the_batch_window_short() {
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        // A window no test outlives: only the warning can get these lines written.
        let (lines, _flush) =
            start(Collect(out_tx), Duration::from_secs(3_600), FLUSH_WAIT).unwrap();
        lines.make_writer().write_all(b"info\n").unwrap();
        let warning = tracing::Metadata::new(
            "warning",
            "test",
            tracing::Level::WARN,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        );
        lines
            .make_writer_for(&warning)
            .write_all(b"warn\n")
            .unwrap();
        let mut text = String::new();
        while !text.contains("warn") {
            let got = out_rx.recv_timeout(Duration::from_secs(30)).unwrap();
            text.push_str(std::str::from_utf8(&got).unwrap());
        }
        assert_eq!(text, "info\nwarn\n");
    }

    /// An output that never finishes a write (a pipe nobody reads).
    struct Stuck(crossbeam_channel::Receiver<()>);

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.recv();
            Err(std::io::Error::other("unblocked"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_does_not_keep_the_guard_waiting() {
        let (never_tx, never_rx) = crossbeam_channel::bounded::<()>(0);
        let wait = Duration::from_millis(300);
        let (lines, flush) = start(Stuck(never_rx), Duration::ZERO, wait).unwrap();
        // Fill the queue behind the stuck write, from a thread that may block when it is full.
        let filler = std::thread::spawn(move || {
            for i in 0..QUEUE_LINES + 10 {
                lines.send_line(format!("{i}\n").into_bytes());
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        drop(flush);
        let took = started.elapsed();
        assert!(took >= wait, "gave up early: {took:?}");
        assert!(took < Duration::from_secs(30), "waited {took:?}");
        // Unblocks the writer, then the filler; with every sender gone the writer ends too.
        drop(never_tx);
        filler.join().unwrap();
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!("not registered")
        }
    }
}

//! Capture analysis for `wschat-dump`: pcap/pcapng reading ([`capture`]), decoding packets down to TCP
//! ([`segment`]), TCP reassembly per connection and direction ([`tcp`]), WebSocket stream decoding with the
//! daemon's own frame codec ([`stream`]), the connection-following [`analyzer`] that turns it all into timeline
//! [`event`]s, and their rendering as text or JSON ([`render`]) or as per-connection statistics ([`stats`]).
//! [`run`] ties them together over any reader, so the same code serves files and a live `tcpdump -U -w -` pipe.

pub mod analyzer;
pub mod capture;
pub mod event;
pub mod render;
pub mod segment;
pub mod stats;
pub mod stream;
pub mod tcp;

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use analyzer::{Analyzer, AnalyzerOptions};
use capture::{CaptureError, CaptureReader};
use event::{Event, EventKind};
use render::{event_json, Style, TextRenderer};
use segment::SegmentError;
use stats::StatsCollector;

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The human timeline.
    Timeline,
    /// One JSON object per event.
    Json,
    /// Per-connection statistics, as text.
    Stats,
    /// Per-connection statistics, one JSON object per connection.
    StatsJson,
}

/// Everything `run` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Ports and payload limit.
    pub analyzer: AnalyzerOptions,
    /// Follow only the connection of this client address.
    pub conn: Option<SocketAddr>,
    /// What to print.
    pub output: Output,
    /// How the timeline looks.
    pub style: Style,
    /// Flush after every packet (live input).
    pub live: bool,
}

impl Default for Options {
    fn default() -> Self {
        let analyzer = AnalyzerOptions::default();
        let style = Style { color: false, utc: false, max_payload: analyzer.keep };
        Options { analyzer, conn: None, output: Output::Timeline, style, live: false }
    }
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Packets read.
    pub packets: u64,
    /// Events printed (after the `--conn` filter).
    pub events: u64,
    /// Packets that could not be decoded down to TCP.
    pub skipped: u64,
    /// The first of them, with the reason.
    pub first_skip: Option<(u64, SegmentError)>,
    /// The capture could not be read to its end: why. Everything before the fault was printed.
    pub error: Option<CaptureError>,
}

/// Renders events as they come.
struct Sink<'a> {
    /// Where output goes.
    out: &'a mut dyn Write,
    /// Options.
    opts: &'a Options,
    /// Timeline renderer.
    text: TextRenderer,
    /// Statistics.
    stats: StatsCollector,
    /// What was seen.
    outcome: Outcome,
}

impl Sink<'_> {
    /// Filters, renders and accounts `events`, leaving the vector empty.
    fn take(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        for ev in events.drain(..) {
            if let EventKind::PacketSkipped(e) = &ev.kind {
                self.outcome.skipped += 1;
                if self.outcome.first_skip.is_none() {
                    self.outcome.first_skip = Some((ev.packet, e.clone()));
                }
            }
            if let (Some(want), Some(c)) = (self.opts.conn, ev.conn) {
                if c.client != want {
                    continue;
                }
            }
            self.outcome.events += 1;
            self.stats.observe(&ev);
            match self.opts.output {
                Output::Timeline => self.text.event(&ev, self.out)?,
                Output::Json => writeln!(self.out, "{}", event_json(&ev, &self.opts.style))?,
                Output::Stats | Output::StatsJson => {}
            }
        }
        Ok(())
    }
}

/// Reads a whole capture from `input`, printing to `out` as it goes. A capture fault ends the reading but not
/// the run: what was decoded is still printed, and the fault is returned in [`Outcome::error`]. Only a failure
/// to write is an `Err`.
pub fn run<R: Read>(input: R, out: &mut dyn Write, opts: &Options) -> io::Result<Outcome> {
    let mut sink = Sink {
        out,
        opts,
        text: TextRenderer::new(opts.style),
        stats: StatsCollector::new(),
        outcome: Outcome::default(),
    };
    let mut analyzer = Analyzer::new(opts.analyzer.clone());
    let mut events = Vec::new();
    match CaptureReader::new(input) {
        Ok(mut reader) => loop {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    analyzer.packet(&p, &mut events);
                    sink.take(&mut events)?;
                    if opts.live {
                        sink.out.flush()?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    sink.outcome.error = Some(e);
                    break;
                }
            }
            sink.outcome.packets = reader.packets_read();
        },
        Err(e) => sink.outcome.error = Some(e),
    }
    analyzer.finish(&mut events);
    sink.take(&mut events)?;
    match opts.output {
        Output::Stats => sink.out.write_all(sink.stats.text().as_bytes())?,
        Output::StatsJson => {
            for v in sink.stats.json() {
                writeln!(sink.out, "{v}")?;
            }
        }
        Output::Timeline | Output::Json => {}
    }
    sink.out.flush()?;
    Ok(sink.outcome)
}

/// Runs every output mode over `data` and discards the output; the entry point of the capture fuzz target.
/// Returns the number of events of the timeline run.
pub fn analyze_for_fuzzing(data: &[u8]) -> u64 {
    let mut events = 0;
    for output in [Output::Timeline, Output::Json, Output::StatsJson] {
        let opts = Options { output, ..Options::default() };
        if let Ok(outcome) = run(data, &mut io::sink(), &opts) {
            if output == Output::Timeline {
                events = outcome.events;
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_capture_input_is_an_outcome_error_with_no_output() {
        let mut out = Vec::new();
        let outcome = run(&b"hello world, not a capture"[..], &mut out, &Options::default()).unwrap();
        assert!(matches!(outcome.error, Some(CaptureError::NotACapture { .. })));
        assert!(out.is_empty());
    }

    #[test]
    fn fuzz_entry_survives_garbage() {
        assert_eq!(analyze_for_fuzzing(&[0xd4, 0xc3, 0xb2, 0xa1, 1, 2, 3]), 0);
        assert_eq!(analyze_for_fuzzing(b""), 0);
    }
}

//! The faults, what each cost, the results table and the rules a run must keep.

use crate::chat::ChatOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// No fault: the baseline.
    None,
    KillApiserver,
    KillChatA,
    KillChatB,
    KillMedia,
    PausePostgres,
    PauseRedis,
    PauseNats,
    CutPublisher,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::KillApiserver,
        Fault::KillChatA,
        Fault::KillChatB,
        Fault::KillMedia,
        Fault::PausePostgres,
        Fault::PauseRedis,
        Fault::PauseNats,
        Fault::CutPublisher,
    ];
    /// The test command's short run: one of each kind (a kill, a pause, a cut), on the parts
    /// whose failure costs users the most.
    pub const QUICK: [Fault; 5] =
        [Fault::KillChatA, Fault::KillMedia, Fault::PauseRedis, Fault::PauseNats, Fault::CutPublisher];

    /// The longest chat outage a sender may see, in seconds: reconnecting to the other gateway
    /// after a kill; none to speak of when a part chat does not stand on fails (Redis holds only
    /// limits, which fall back to memory). A NATS pause has no bound: JetStream is where a
    /// message becomes durable, and until it answers, sends are refused (`unavailable`).
    fn chat_outage_bound(self) -> Option<f64> {
        match self {
            Fault::PauseNats => None,
            Fault::KillChatA | Fault::KillChatB => Some(5.0),
            _ => Some(3.0),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Fault::None => "no fault (baseline)",
            Fault::KillApiserver => "kill -9 the API server, restart it",
            Fault::KillChatA => "kill -9 chat gateway A, restart it",
            Fault::KillChatB => "kill -9 chat gateway B, restart it",
            Fault::KillMedia => "kill -9 the media worker, restart it",
            Fault::PausePostgres => "SIGSTOP Postgres for 10 s",
            Fault::PauseRedis => "SIGSTOP Redis for 10 s",
            Fault::PauseNats => "SIGSTOP NATS for 10 s",
            Fault::CutPublisher => "cut a publisher's connection",
        }
    }
}

/// Analytics samples of a window: expected ticks, ticks with no sample, samples short of viewers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Analytics {
    pub ticks: usize,
    pub missing: usize,
    pub low: usize,
}

impl Analytics {
    pub fn merge(all: Vec<Analytics>) -> Self {
        all.into_iter().fold(Analytics::default(), |a, b| Analytics {
            ticks: a.ticks + b.ticks,
            missing: a.missing + b.missing,
            low: a.low + b.low,
        })
    }

    fn cell(&self) -> String {
        match (self.missing, self.low) {
            (0, 0) => format!("no hole ({} samples)", self.ticks),
            (m, 0) => format!("{m} of {} samples missing", self.ticks),
            (0, l) => format!("{l} of {} samples short of viewers", self.ticks),
            (m, l) => format!("{m} missing, {l} short, of {}", self.ticks),
        }
    }
}

pub struct Row {
    pub fault: Fault,
    /// Seconds from the restart to serving again (killed processes).
    pub restart: Option<f64>,
    pub chat: ChatOutcome,
    /// Acknowledged messages the durable history does not hold.
    pub not_in_history: usize,
    pub api_down: f64,
    pub playback_down: f64,
    pub stall: f64,
    pub player_restarts: u64,
    pub live: bool,
    pub analytics: Analytics,
}

fn secs(s: f64) -> String {
    if s < 0.05 { "0".into() } else { format!("{s:.1}") }
}

pub fn markdown(rows: &[Row], load: &str) -> String {
    let mut t = format!("Load: {load}.\n\n");
    t.push_str(
        "| fault | restarted process serves after | chat msgs acked | acked lost | not in history | delivered twice | longest chat outage | API outage | playback outage | longest stall | still live | analytics |\n",
    );
    t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in rows {
        let chat_out = r.chat.longest_down.max(r.chat.longest_silence);
        t.push_str(&format!(
            "| {} | {} | {} | **{}** | {} | {} | {} s | {} s | {} s | {} s{} | {} | {} |\n",
            r.fault.describe(),
            r.restart.map_or("-".into(), |s| format!("{s:.1} s")),
            r.chat.acked,
            r.chat.lost,
            r.not_in_history,
            r.chat.duplicates,
            secs(chat_out),
            secs(r.api_down),
            secs(r.playback_down),
            secs(r.stall),
            if r.player_restarts > 0 { format!(" ({} playlist restarts)", r.player_restarts) } else { String::new() },
            if r.live { "yes" } else { "**no**" },
            r.analytics.cell(),
        ));
    }
    let refused: Vec<String> = rows
        .iter()
        .flat_map(|r| r.chat.refused.iter().map(move |(c, n)| format!("{n} `{c}` ({})", r.fault.describe())))
        .collect();
    if !refused.is_empty() {
        t.push_str(&format!(
            "\nMessages refused with an error frame (not acknowledged, so not counted as lost): {}.\n",
            refused.join(", ")
        ));
    }
    t
}

/// The rules every run keeps; each broken one, said plainly.
pub fn failures(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let f = r.fault.describe();
        if r.chat.lost > 0 {
            out.push(format!(
                "{f}: {} acknowledged message(s) never reached {} socket(s) that were owed them",
                r.chat.lost, r.chat.missing_deliveries
            ));
        }
        if r.not_in_history > 0 {
            out.push(format!("{f}: {} acknowledged message(s) are not in the chat history", r.not_in_history));
        }
        if !r.live {
            out.push(format!("{f}: a stream was not live (or a player got no new segment) at the end of the window"));
        }
        let chat_out = r.chat.longest_down.max(r.chat.longest_silence);
        if let Some(bound) = r.fault.chat_outage_bound()
            && chat_out > bound
        {
            out.push(format!("{f}: chat did not serve a sender for {chat_out:.1} s (at most {bound} s)"));
        }
        if r.chat.acked == 0 {
            out.push(format!("{f}: no chat message was acknowledged in the window"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lost: usize, live: bool) -> Row {
        Row {
            fault: Fault::KillChatA,
            restart: Some(0.4),
            chat: ChatOutcome { acked: 10, lost, missing_deliveries: lost * 3, ..Default::default() },
            not_in_history: 0,
            api_down: 0.0,
            playback_down: 0.0,
            stall: 1.25,
            player_restarts: 0,
            live,
            analytics: Analytics { ticks: 10, missing: 1, low: 0 },
        }
    }

    #[test]
    fn a_lost_message_or_a_dead_stream_fails_the_run() {
        assert!(failures(&[row(0, true)]).is_empty());
        assert_eq!(failures(&[row(2, true)]).len(), 1);
        assert_eq!(failures(&[row(0, false)]).len(), 1);
        let mut slow = row(0, true);
        slow.chat.longest_silence = 6.0;
        assert_eq!(failures(&[slow]).len(), 1, "chat out for longer than a reconnect");
    }

    #[test]
    fn the_table_says_what_was_lost() {
        let t = markdown(&[row(2, false)], "tiny");
        assert!(t.contains("| **2** |"), "{t}");
        assert!(t.contains("| **no** |"), "{t}");
        assert!(t.contains("1 of 10 samples missing"), "{t}");
        assert!(t.contains("1.2 s") || t.contains("1.3 s"), "{t}");
    }
}

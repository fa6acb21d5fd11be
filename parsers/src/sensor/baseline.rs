//! The learned baseline: which assets, conversations and industrial functions are normal.
//!
//! For a learning window from the first packet the sensor only records; afterwards anything
//! not in the baseline raises a notable event once (and joins the baseline). The baseline is
//! plain data: the agent persists it as JSON so a restart neither relearns nor re-alerts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The most entries a baseline holds; beyond it nothing new is learnt (counted).
pub const MAX_ENTRIES: usize = 1_000_000;

/// What is normal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// When learning started (ns since the epoch, packet time).
    pub started_ns: Option<i64>,
    /// Assets: `vlan/ip`.
    pub assets: BTreeSet<String>,
    /// Conversations: `proto client server port`.
    pub conversations: BTreeSet<String>,
    /// Functions per conversation: `conversation|protocol|code`.
    pub functions: BTreeSet<String>,
    /// Entries not recorded because the baseline was full.
    #[serde(default)]
    pub overflow: u64,
}

/// What kind of thing was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Novelty {
    /// An address never seen.
    Asset,
    /// A client talking to a server (address and port) it never talked to.
    Conversation,
    /// A function code never used on a known conversation.
    Function,
}

impl Baseline {
    /// Note `item` of `kind` at `now`; true if it is new and learning has ended.
    pub fn check(&mut self, now: i64, learning_ns: i64, kind: Novelty, item: &str) -> bool {
        let started = *self.started_ns.get_or_insert(now);
        let learning = now < started.saturating_add(learning_ns);
        let total = self.assets.len() + self.conversations.len() + self.functions.len();
        let set = match kind {
            Novelty::Asset => &mut self.assets,
            Novelty::Conversation => &mut self.conversations,
            Novelty::Function => &mut self.functions,
        };
        if set.contains(item) {
            return false;
        }
        if total >= MAX_ENTRIES {
            self.overflow += 1;
            return false;
        }
        set.insert(item.to_owned());
        !learning
    }

    /// True if `conversation` is known.
    pub fn knows_conversation(&self, conversation: &str) -> bool {
        self.conversations.contains(conversation)
    }
}

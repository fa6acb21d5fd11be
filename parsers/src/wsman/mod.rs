/*!
The collector side of Windows Event Forwarding's source-initiated subscriptions: WS-Management
(DMTF DSP0226) with Microsoft's extensions (MS-WSMV), as Windows clients speak it. Pure: bytes
and settings in, envelopes out; sockets, TLS and state live in the agent.

```text
client                                    collector
  POST /wsman/SubscriptionManager/WEC
       Enumerate (MachineID)  ───────────►  EnumerateResponse: one Subscribe envelope per
                                            subscription (query, heartbeat, bookmark,
                                            NotifyTo = /wsman/subscriptions/<id>)
  POST /wsman/SubscriptionManager/WEC
       End                    ───────────►  204
  POST /wsman/subscriptions/<id>
       Heartbeat | Events (+ Bookmark) ───►  Ack (the client advances its bookmark)
       SubscriptionEnd        ───────────►  Ack
```

* [`text`]: UTF-16 / UTF-8 bodies (byte-order mark, then `charset`).
* [`sldc`]: ECMA-321 decompression for `Content-Encoding: SLDC`.
* [`envelope`]: the request headers, bookmark, events and end status.
* [`reply`]: `EnumerateResponse`, `Ack` and SOAP faults.
*/

pub mod cert;
pub mod envelope;
pub mod reply;
pub mod sldc;
pub mod text;

#[cfg(test)]
mod tests;

use sha1::{Digest, Sha1};

/// `a:To` / `a:ReplyTo` of replies: the response goes back on the same connection.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// Subscription items of an `EnumerateResponse`.
pub const NS_SUBSCRIPTION: &str = "http://schemas.microsoft.com/wbem/wsman/1/subscription";
/// The client asks for its subscriptions.
pub const ACTION_ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
/// The collector's answer to it.
pub const ACTION_ENUMERATE_RESPONSE: &str =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";
/// The action of each offered subscription envelope.
pub const ACTION_SUBSCRIBE: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing/Subscribe";
/// A batch of events.
pub const ACTION_EVENTS: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Events";
/// Nothing to send for a heartbeat interval.
pub const ACTION_HEARTBEAT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Heartbeat";
/// The client drops a subscription.
pub const ACTION_SUBSCRIPTION_END: &str =
    "http://schemas.xmlsoap.org/ws/2004/08/eventing/SubscriptionEnd";
/// The client closes a full-duplex operation (MS-WSMV 3.1.4.19).
pub const ACTION_END: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman/End";
/// The collector's acknowledgement.
pub const ACTION_ACK: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Ack";
/// The only resource a Subscribe may name.
pub const RESOURCE_EVENT_LOG: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/EventLog";
/// Batched, acknowledged delivery (DSP0226 10.2.9.4), what Windows collectors ask for.
pub const DELIVERY_EVENTS: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/Events";
/// TLS with a client certificate.
pub const PROFILE_HTTPS_MUTUAL: &str =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";
/// The XPath event query dialect.
pub const DIALECT_EVENT_QUERY: &str = "http://schemas.microsoft.com/win/2004/08/events/eventquery";

/// A GUID (upper case, no braces) derived from `parts`: stable across restarts, different
/// whenever any part differs (SHA-1 name-based, RFC 4122 version 5 layout).
pub fn stable_guid(parts: &[&str]) -> String {
    let mut h = Sha1::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    for (dst, src) in b.iter_mut().zip(d.iter()) {
        *dst = *src;
    }
    b[6] = (b[6] & 0x0F) | 0x50;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or(""),
        hex.get(8..12).unwrap_or(""),
        hex.get(12..16).unwrap_or(""),
        hex.get(16..20).unwrap_or(""),
        hex.get(20..32).unwrap_or("")
    )
}

/// A `QueryList` selecting every event of each channel (`*`), one `Select` per channel.
pub fn query_for_channels(channels: &[String]) -> String {
    let mut q = String::from("<QueryList><Query Id=\"0\">");
    for c in channels {
        q.push_str("<Select Path=\"");
        q.push_str(&quick_xml::escape::escape(c.as_str()));
        q.push_str("\">*</Select>");
    }
    q.push_str("</Query></QueryList>");
    q
}

/// A certificate's SHA-1 thumbprint as Windows shows it (upper-case hex, no separators): the
/// `IssuerCA=` value of the Group Policy subscription manager string.
pub fn thumbprint(der: &[u8]) -> String {
    Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Check a configured `QueryList` document: well-formed, rooted at `QueryList`, with at least
/// one `Select` (the reason when not).
pub fn check_query(xml: &str) -> Result<(), String> {
    use quick_xml::events::Event as Xml;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut root: Option<String> = None;
    let mut selects = 0usize;
    loop {
        match reader.read_event() {
            Ok(Xml::Start(s)) => {
                let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                if depth == 0 {
                    if root.is_some() {
                        return Err("more than one root element".into());
                    }
                    root = Some(name.clone());
                }
                if name == "Select" {
                    selects += 1;
                }
                depth += 1;
            }
            Ok(Xml::Empty(s)) => {
                if depth == 0 {
                    return Err("the root element is empty".into());
                }
                if s.local_name().as_ref() == b"Select" {
                    selects += 1;
                }
            }
            Ok(Xml::End(_)) => depth = depth.saturating_sub(1),
            Ok(Xml::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("not well-formed XML: {e}")),
        }
    }
    match root.as_deref() {
        Some("QueryList") if depth == 0 && selects > 0 => Ok(()),
        Some("QueryList") if depth == 0 => Err("no Select element".into()),
        Some("QueryList") => Err("an element is not closed".into()),
        Some(other) => Err(format!("the root element is {other}, not QueryList")),
        None => Err("no QueryList element".into()),
    }
}

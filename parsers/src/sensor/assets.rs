//! Asset inventory: every local address seen, with its MAC (and the MAC's registered vendor),
//! VLAN, roles per protocol, what the protocols revealed of its identity (vendor, model,
//! serial, firmware), and first and last seen. An `asset` event is written when an asset is
//! first seen and whenever something new is learnt about it; at the end of a capture (or at
//! shutdown) every asset seen since its last event is written again with its last-seen time.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use weir_schemas::{AssetInfo, Device, Event, EventClass, Host, NameId, Pairs};

use super::mac_string;

/// OUI (first three MAC bytes) → registered organisation.
pub type OuiTable = HashMap<[u8; 3], String>;

/// Read an OUI table in the IEEE CSV form (`Registry,Assignment,Organization Name,...`, as in
/// Debian's `ieee-data` package `/usr/share/ieee-data/oui.csv`) or the `oui.txt` form
/// (`00-1B-1B   (hex)  Siemens AG`, tab-separated).
pub fn parse_oui(text: &str) -> OuiTable {
    let mut t = OuiTable::new();
    for line in text.lines() {
        let (hex, org) = if let Some(rest) = line.strip_prefix("MA-L,") {
            let mut parts = rest.splitn(2, ',');
            let hex = parts.next().unwrap_or("");
            let org = parts.next().unwrap_or("");
            let org = if let Some(quoted) = org.strip_prefix('"') {
                quoted.split('"').next().unwrap_or("")
            } else {
                org.split(',').next().unwrap_or("")
            };
            (hex.to_string(), org)
        } else if let Some((left, org)) = line.split_once("(hex)") {
            (left.trim().replace('-', ""), org)
        } else {
            continue;
        };
        let org = org.trim();
        if hex.len() != 6 || org.is_empty() {
            continue;
        }
        let b = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16).ok();
        if let (Some(a), Some(b2), Some(c)) = (b(0), b(2), b(4)) {
            t.insert([a, b2, c], org.to_string());
        }
    }
    t
}

/// True for addresses that belong to a plant network rather than the internet: RFC 1918,
/// carrier-grade NAT, link-local and unique-local addresses.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.octets()[3] == 255)
        }
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

#[derive(Debug, Default, Clone)]
struct Asset {
    mac: Option<[u8; 6]>,
    roles: BTreeSet<String>,
    identity: BTreeMap<String, String>,
    first_ns: i64,
    last_ns: i64,
    reported_ns: i64,
    new: bool,
    changed: bool,
}

/// The asset table.
#[derive(Debug, Default)]
pub struct Assets {
    map: HashMap<(Option<u16>, IpAddr), Asset, ahash::RandomState>,
    pending: BTreeSet<(Option<u16>, IpAddr)>,
    oui: Option<Arc<OuiTable>>,
    /// Addresses not tracked because the table was full.
    pub overflow: u64,
}

/// The most assets tracked.
pub const MAX_ASSETS: usize = 65_536;

/// The identity fields each protocol's transactions reveal about the server (or, for BACnet
/// I-Am, the sender).
const IDENTITY: &[(&str, &str)] = &[
    ("modbus", "vendor_name"),
    ("modbus", "product_code"),
    ("modbus", "revision"),
    ("modbus", "product_name"),
    ("modbus", "model_name"),
    ("modbus", "user_application_name"),
    ("s7comm", "automation_system_name"),
    ("s7comm", "module_name"),
    ("s7comm", "plant_name"),
    ("s7comm", "serial_number"),
    ("s7comm", "module_type_name"),
    ("s7comm", "location"),
    ("enip", "vendor_id"),
    ("enip", "device_type"),
    ("enip", "product_code"),
    ("enip", "revision"),
    ("enip", "serial_number"),
    ("enip", "product_name"),
    ("cip", "vendor_id"),
    ("cip", "product_name"),
    ("bacnet", "vendor_id"),
    ("opcua", "endpoint_url"),
];

/// Role names: (client, server) per protocol.
pub fn roles(protocol: &str) -> (&'static str, &'static str) {
    match protocol {
        "dnp3" => ("master", "outstation"),
        "s7comm" => ("client", "plc"),
        "enip" | "cip" => ("scanner", "adapter"),
        "iec104" => ("controlling_station", "controlled_station"),
        "bacnet" => ("client", "device"),
        "mqtt" => ("client", "broker"),
        _ => ("client", "server"),
    }
}

impl Assets {
    /// A table resolving MAC vendors with `oui`.
    pub fn new(oui: Option<Arc<OuiTable>>) -> Assets {
        Assets {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            pending: BTreeSet::new(),
            oui,
            overflow: 0,
        }
    }

    /// Assets held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no asset is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn entry(&mut self, ts: i64, vlan: Option<u16>, ip: IpAddr) -> Option<(&mut Asset, bool)> {
        let ip = ip.to_canonical();
        if !is_local(ip) || !is_unicast(ip) {
            return None;
        }
        let key = (vlan, ip);
        let mut created = false;
        if !self.map.contains_key(&key) {
            if self.map.len() >= MAX_ASSETS {
                self.overflow += 1;
                return None;
            }
            self.map.insert(
                key,
                Asset {
                    first_ns: ts,
                    last_ns: ts,
                    reported_ns: i64::MIN,
                    new: true,
                    ..Asset::default()
                },
            );
            self.pending.insert(key);
            created = true;
        }
        let a = self.map.get_mut(&key)?;
        a.last_ns = a.last_ns.max(ts);
        Some((a, created))
    }

    fn touch(&mut self, vlan: Option<u16>, ip: IpAddr) {
        let key = (vlan, ip.to_canonical());
        if self.map.get(&key).is_some_and(|a| a.new || a.changed) {
            self.pending.insert(key);
        }
    }

    /// `ip` was seen at `ts` (with `mac` when the frame had one, from the sender). Returns true
    /// for an asset never seen before.
    pub fn seen(&mut self, ts: i64, vlan: Option<u16>, ip: IpAddr, mac: Option<[u8; 6]>) -> bool {
        let Some((a, created)) = self.entry(ts, vlan, ip) else {
            return false;
        };
        if let Some(m) = mac {
            if a.mac != Some(m) && m != [0; 6] && m[0] & 1 == 0 {
                if a.mac.is_some() {
                    a.changed = true;
                }
                a.mac = Some(m);
            }
        }
        self.touch(vlan, ip);
        created
    }

    /// What an `ot` event tells: roles of both ends, the server's identity.
    ///
    /// Runs for every transaction: a role already known costs a lookup, not an allocation.
    pub fn transaction(&mut self, ts: i64, vlan: Option<u16>, event: &Event) {
        let Some(ot) = event.ot.as_deref() else {
            return;
        };
        let proto = ot.protocol.as_ref();
        let (client_role, server_role) = roles(proto);
        let ip = |e: &Option<weir_schemas::Endpoint>| {
            e.as_ref()
                .and_then(|e| e.ip.as_deref())
                .and_then(|s| s.parse::<IpAddr>().ok())
        };
        let (src, dst) = (ip(&event.source), ip(&event.destination));
        let announcer = proto == "bacnet" && ot.function.as_deref() == Some("i-Am");
        let (client, server) = if announcer { (None, src) } else { (src, dst) };
        if let Some(c) = client {
            if let Some((a, _)) = self.entry(ts, vlan, c) {
                if add_role(&mut a.roles, proto, client_role) {
                    a.changed = true;
                }
            }
            self.touch(vlan, c);
        }
        if let Some(s) = server {
            let identifies = IDENTITY.iter().any(|(p, _)| *p == proto);
            let idents: Vec<(String, String)> = ot
                .detail
                .0
                .iter()
                .filter(|(k, v)| {
                    identifies
                        && !v.is_empty()
                        && IDENTITY.iter().any(|(p, key)| *p == proto && key == k)
                })
                .map(|(k, v)| (format!("{proto}.{k}"), v.clone()))
                .collect();
            let device_instance = (announcer
                && ot
                    .detail
                    .0
                    .iter()
                    .any(|(k, v)| k == "object_type" && v == "device"))
            .then(|| {
                ot.detail
                    .0
                    .iter()
                    .find(|(k, _)| k == "object_instance")
                    .map(|(_, v)| v.clone())
            })
            .flatten();
            if let Some((a, _)) = self.entry(ts, vlan, s) {
                if add_role(&mut a.roles, proto, server_role) {
                    a.changed = true;
                }
                for (k, v) in idents
                    .into_iter()
                    .chain(device_instance.map(|d| ("bacnet.device_instance".to_string(), d)))
                {
                    if a.identity.get(&k) != Some(&v) {
                        a.identity.insert(k, v);
                        a.changed = true;
                    }
                }
            }
            self.touch(vlan, s);
        }
    }

    /// Events for assets that are new or changed since their last event, in address order.
    pub fn changed(&mut self, out: &mut Vec<Event>) {
        if self.pending.is_empty() {
            return;
        }
        let keys: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        self.report(out, keys);
    }

    /// Events for every asset seen since its last event (end of capture, shutdown).
    pub fn last_seen(&mut self, out: &mut Vec<Event>) {
        self.pending.clear();
        let mut keys: Vec<(Option<u16>, IpAddr)> = self
            .map
            .iter()
            .filter(|(_, a)| a.new || a.changed || a.last_ns > a.reported_ns)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        self.report(out, keys);
    }

    fn report(&mut self, out: &mut Vec<Event>, keys: Vec<(Option<u16>, IpAddr)>) {
        for key in keys {
            let oui = self.oui.clone();
            let Some(a) = self.map.get_mut(&key) else {
                continue;
            };
            let reason = if a.new {
                "new"
            } else if a.changed {
                "changed"
            } else {
                "last_seen"
            };
            out.push(asset_event(key, a, reason, oui.as_deref()));
            a.new = false;
            a.changed = false;
            a.reported_ns = a.last_ns;
        }
    }
}

fn vendor_name_of_cip(id: &str) -> Option<&'static str> {
    Some(match id {
        "1" => "Rockwell Automation/Allen-Bradley",
        "2" => "Namco Controls",
        "5" => "Rockwell Automation/Reliance Electric",
        "8" => "Molex",
        "40" => "WAGO",
        "44" => "Phoenix Contact",
        "47" => "Omron",
        "243" => "Schneider Electric",
        "283" => "Hilscher",
        "1251" => "Siemens",
        _ => return None,
    })
}

fn asset_event(
    key: (Option<u16>, IpAddr),
    a: &Asset,
    reason: &'static str,
    oui: Option<&OuiTable>,
) -> Event {
    let (vlan, ip) = key;
    let at = |ns: i64| Utc.timestamp_nanos(ns);
    let ts = if reason == "last_seen" {
        a.last_ns
    } else {
        a.last_ns.max(a.first_ns)
    };
    let mut e = Event::new(EventClass::Asset, at(ts));
    e.event.kind = Cow::Borrowed("asset");
    e.event.category = vec![Cow::Borrowed("host")];
    e.event.kind_type = vec![Cow::Borrowed("info")];
    e.event.action = Some(format!("asset-{}", reason.replace('_', "-")));
    e.event.dataset = Some(Cow::Borrowed("weir.asset"));
    let ip_s = ip.to_string();
    e.host = Some(Host {
        ip: vec![ip_s.clone()],
        mac: a.mac.iter().map(mac_string).collect(),
        ..Host::default()
    });
    e.relate_ip(&ip_s);
    let get = |k: &str| a.identity.get(k).cloned();
    let mut device = Device {
        manufacturer: get("modbus.vendor_name").or_else(|| {
            get("enip.vendor_id").and_then(|v| vendor_name_of_cip(&v).map(str::to_string))
        }),
        ..Device::default()
    };
    let model_name = get("s7comm.module_name")
        .or_else(|| get("modbus.model_name"))
        .or_else(|| get("modbus.product_name"))
        .or_else(|| get("enip.product_name"))
        .or_else(|| get("cip.product_name"));
    let model_id = get("modbus.product_code");
    if model_name.is_some() || model_id.is_some() {
        device.model = Some(NameId {
            name: model_name,
            id: None,
            identifier: model_id,
        });
    }
    if let Some(p) = get("enip.product_code") {
        device.product = Some(NameId {
            name: get("enip.product_name"),
            id: Some(p),
            identifier: None,
        });
    }
    if let Some(v) = get("enip.vendor_id").or_else(|| get("bacnet.vendor_id")) {
        device.vendor = Some(NameId {
            name: device.manufacturer.clone(),
            id: Some(v),
            identifier: None,
        });
    }
    device.serial_number = get("s7comm.serial_number").or_else(|| get("enip.serial_number"));
    let server_roles: Vec<&String> = a
        .roles
        .iter()
        .filter(|r| {
            !r.ends_with(":client")
                && !r.ends_with(":master")
                && !r.ends_with(":scanner")
                && !r.ends_with(":controlling_station")
        })
        .collect();
    if !server_roles.is_empty() {
        device.kind = Some(
            if a.roles.iter().any(|r| {
                r == "s7comm:plc"
                    || r == "modbus:server"
                    || r == "enip:adapter"
                    || r == "cip:adapter"
                    || r == "dnp3:outstation"
                    || r == "iec104:controlled_station"
            }) {
                "controller".to_string()
            } else {
                "server".to_string()
            },
        );
    }
    if device != Device::default() {
        e.device = Some(Box::new(device));
    }
    let mut identity = Pairs::default();
    for (k, v) in &a.identity {
        identity.0.push((Cow::Owned(k.clone()), v.clone()));
    }
    e.asset = Some(Box::new(AssetInfo {
        roles: a.roles.iter().cloned().collect(),
        vlan,
        mac_vendor: a
            .mac
            .and_then(|m| oui.and_then(|t| t.get(&[m[0], m[1], m[2]]).cloned())),
        firmware: get("modbus.revision").or_else(|| get("enip.revision")),
        first_seen: Some(at(a.first_ns)),
        last_seen: Some(at(a.last_ns)),
        identity,
        reason: Some(Cow::Borrowed(reason)),
    }));
    e.message = Some(format!(
        "asset {ip_s}{}: {}",
        a.mac
            .map(|m| format!(" ({})", mac_string(&m)))
            .unwrap_or_default(),
        if a.roles.is_empty() {
            "no industrial role seen".to_string()
        } else {
            a.roles.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    ));
    e
}

/// Add the role `proto:role`; true if it is new.
fn add_role(roles: &mut BTreeSet<String>, proto: &str, role: &str) -> bool {
    let mut buf = [0u8; 64];
    let n = proto.len() + 1 + role.len();
    if let Some(slot) = buf.get_mut(..n) {
        let (p, rest) = slot.split_at_mut(proto.len());
        p.copy_from_slice(proto.as_bytes());
        if let Some((colon, r)) = rest.split_first_mut() {
            *colon = b':';
            r.copy_from_slice(role.as_bytes());
        }
        if let Ok(key) = std::str::from_utf8(slot) {
            if roles.contains(key) {
                return false;
            }
        }
    }
    roles.insert(format!("{proto}:{role}"))
}

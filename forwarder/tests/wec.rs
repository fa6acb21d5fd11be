//! The Windows Event Collector endpoint, through real processes and real HTTPS: `weir tx`
//! (source `wec`) → UDP diode on loopback → `weir rx` → NDJSON. The client here builds its
//! envelopes as the WS-Management specification (DSP0226) and MS-WSMV describe them and as
//! Windows sends them (UTF-16 with a byte-order mark, SLDC bodies, CDATA events), and presents
//! client certificates signed by a test CA made with rcgen.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use weir_parsers::wsman::text::{self, Charset};

const HOST: &str = "wec.plant.local";

struct Pki {
    ca_pem: String,
    ca_thumbprint: String,
    server_pem: String,
    server_key: String,
    /// A client certificate from the plant CA: (cert PEM, key PEM, DER thumbprint).
    client: (String, String, String),
    /// A client certificate from another CA.
    rogue: (String, String),
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        SanType,
    };
    let ca = |cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (p.self_signed(&key).unwrap(), key)
    };
    let (ca_cert, ca_key) = ca("Weir Test Plant CA");
    let (rogue_ca, rogue_key) = ca("Somebody Else CA");
    let leaf =
        |cn: &str, org: Option<&str>, server: bool, issuer: &rcgen::Certificate, ikey: &KeyPair| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            // Most general first, as CAs issue them: RFC 4514 prints it most specific first.
            p.distinguished_name = rcgen::DistinguishedName::new();
            if let Some(o) = org {
                p.distinguished_name.push(DnType::OrganizationName, o);
            }
            p.distinguished_name.push(DnType::CommonName, cn);
            if server {
                p.subject_alt_names = vec![
                    SanType::DnsName(HOST.try_into().unwrap()),
                    SanType::IpAddress([127, 0, 0, 1].into()),
                ];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            } else {
                p.subject_alt_names = vec![SanType::DnsName(cn.try_into().unwrap())];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            let cert = p.signed_by(&key, issuer, ikey).unwrap();
            (cert, key)
        };
    let (server, server_key) = leaf(HOST, None, true, &ca_cert, &ca_key);
    let (client, client_key) = leaf(
        "hmi-01.plant.local",
        Some("Plant Ltd"),
        false,
        &ca_cert,
        &ca_key,
    );
    let (rogue, rogue_key2) = leaf(
        "hmi-01.plant.local",
        Some("Plant Ltd"),
        false,
        &rogue_ca,
        &rogue_key,
    );
    Pki {
        ca_thumbprint: weir_parsers::wsman::thumbprint(ca_cert.der()),
        ca_pem: ca_cert.pem(),
        server_pem: server.pem(),
        server_key: server_key.serialize_pem(),
        client: (
            client.pem(),
            client_key.serialize_pem(),
            weir_parsers::wsman::thumbprint(client.der()),
        ),
        rogue: (rogue.pem(), rogue_key2.serialize_pem()),
    }
}

fn wec_config(dir: &Path, diode: u16, port: u16, pki: &Pki, extra: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("server.pem"), &pki.server_pem).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    std::fs::write(dir.join("client-ca.pem"), &pki.ca_pem).unwrap();
    tx_config(
        dir,
        diode,
        &format!(
            r#"
[[sources]]
type = "wec"
name = "wef"
address = "127.0.0.1:{port}"
hostname = "{HOST}"
server_certificate = "server.pem"
server_key = "server.key"
client_ca = "client-ca.pem"
{extra}

[[sources.subscriptions]]
name = "plant-security"
channels = ["Security", "System"]

[[sources.subscriptions]]
name = "sysmon"
query = "<QueryList><Query Id='0'><Select Path='Microsoft-Windows-Sysmon/Operational'>*[System[(EventID=1 or EventID=3)]]</Select></Query></QueryList>"
read_existing_events = true
max_items = 500
"#
        ),
    )
}

/// An HTTPS client resolving the collector's name to loopback, trusting the plant CA, with an
/// optional client certificate.
fn client(port: u16, pki: &Pki, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve(HOST, SocketAddr::from(([127, 0, 0, 1], port)))
        .timeout(Duration::from_secs(20));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

struct Reply {
    status: u16,
    content_type: String,
    xml: String,
}

fn post(
    rt: &tokio::runtime::Runtime,
    c: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    content_type: &str,
    encoding: Option<&str>,
) -> Result<Reply, reqwest::Error> {
    rt.block_on(async {
        let mut req = c
            .post(url)
            .header("Content-Type", content_type)
            .header("User-Agent", "Microsoft WinRM Client")
            .body(body);
        if let Some(e) = encoding {
            req = req.header("Content-Encoding", e);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = r.bytes().await?;
        let xml = if bytes.is_empty() {
            String::new()
        } else {
            text::decode(&bytes, Charset::from_content_type(&content_type))
                .unwrap()
                .0
        };
        Ok(Reply {
            status,
            content_type,
            xml,
        })
    })
}

const UTF16: &str = "application/soap+xml;charset=UTF-16";
const UTF8: &str = "application/soap+xml;charset=UTF-8";

fn header(
    action: &str,
    to: &str,
    message_id: &str,
    identifier: Option<&str>,
    extra: &str,
) -> String {
    format!(
        concat!(
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"",
            " xmlns:e=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\" xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"",
            " xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\">",
            "<s:Header><a:To>{to}</a:To>",
            "<w:ResourceURI s:mustUnderstand=\"true\">http://schemas.microsoft.com/wbem/wsman/1/SubscriptionManager/Subscription</w:ResourceURI>",
            "<m:MachineID xmlns:m=\"http://schemas.microsoft.com/wbem/wsman/1/machineid\" s:mustUnderstand=\"false\">HMI-01.plant.local</m:MachineID>",
            "<a:ReplyTo><a:Address s:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>",
            "<a:Action s:mustUnderstand=\"true\">{action}</a:Action>",
            "<w:MaxEnvelopeSize s:mustUnderstand=\"true\">512000</w:MaxEnvelopeSize>",
            "<a:MessageID>{mid}</a:MessageID>",
            "<w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\" />",
            "<p:DataLocale xml:lang=\"en-US\" s:mustUnderstand=\"false\" />",
            "<p:SessionId s:mustUnderstand=\"false\">uuid:981C530F-BE2A-4AAB-BACB-6FB4CD1A14AB</p:SessionId>",
            "<p:OperationID s:mustUnderstand=\"false\">uuid:03A3D1BB-9B16-4847-9F04-C9A8ED38E1E4</p:OperationID>",
            "<p:SequenceId s:mustUnderstand=\"false\">1</p:SequenceId>",
            "<w:OperationTimeout>PT60.000S</w:OperationTimeout>",
            "{ident}{extra}</s:Header>"
        ),
        to = to,
        action = action,
        mid = message_id,
        ident = identifier
            .map(|i| format!("<e:Identifier xmlns:e=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\">{i}</e:Identifier>"))
            .unwrap_or_default(),
        extra = extra,
    )
}

fn enumerate(to: &str, mid: &str) -> String {
    format!(
        "{}<s:Body><n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate></s:Body></s:Envelope>",
        header("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate", to, mid, None, "")
    )
}

fn heartbeat(to: &str, mid: &str, id: &str) -> String {
    format!(
        "{}<s:Body><w:Events></w:Events></s:Body></s:Envelope>",
        header(
            "http://schemas.dmtf.org/wbem/wsman/1/wsman/Heartbeat",
            to,
            mid,
            Some(id),
            "<w:AckRequested/>"
        )
    )
}

fn events_batch(to: &str, mid: &str, id: &str, record_id: u64, events: &[String]) -> String {
    let bookmark = format!(
        "<w:Bookmark><BookmarkList><Bookmark Channel=\"Security\" RecordId=\"{record_id}\" IsCurrent=\"true\"/></BookmarkList></w:Bookmark><w:AckRequested/>"
    );
    let mut body = header(
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/Events",
        to,
        mid,
        Some(id),
        &bookmark,
    );
    body.push_str("<s:Body><w:Events>");
    for e in events {
        body.push_str(
            "<w:Event Action=\"http://schemas.dmtf.org/wbem/wsman/1/wsman/Event\"><![CDATA[",
        );
        body.push_str(e);
        body.push_str("]]></w:Event>");
    }
    body.push_str("</w:Events></s:Body></s:Envelope>");
    body
}

fn subscription_end(to: &str, mid: &str, id: &str) -> String {
    format!(
        concat!(
            "{}<s:Body><e:SubscriptionEnd><e:SubscriptionManager><a:Address>{to}</a:Address>",
            "<a:ReferenceProperties><e:Identifier>{id}</e:Identifier></a:ReferenceProperties></e:SubscriptionManager>",
            "<e:Status>http://schemas.xmlsoap.org/ws/2004/08/eventing/SourceCancelling</e:Status>",
            "<f:WSManFault xmlns:f=\"http://schemas.microsoft.com/wbem/wsman/1/wsmanfault\" Code=\"1717\" Machine=\"hmi-01\">",
            "<f:Message><f:ProviderFault provider=\"Unknown provider\" path=\"Unknown path\">",
            "<t:ProviderError xmlns:t=\"http://schemas.microsoft.com/wbem/wsman/1/windows/EventLog\">Windows Event Forward Plugin failed to read events.</t:ProviderError>",
            "</f:ProviderFault></f:Message></f:WSManFault></e:SubscriptionEnd></s:Body></s:Envelope>"
        ),
        header("http://schemas.xmlsoap.org/ws/2004/08/eventing/SubscriptionEnd", to, mid, Some(id), "<w:AckRequested/>"),
        to = to,
        id = id,
    )
}

/// SLDC as a Windows client may send it: Reset 2 (raw bytes), every byte as 8 bits with the
/// `0` escape bit after `0xFF`, End of Record, zero padding to 32 bits (ECMA-321).
fn sldc_raw(data: &[u8]) -> Vec<u8> {
    let mut bits: Vec<bool> = Vec::new();
    let put = |v: u32, n: usize, bits: &mut Vec<bool>| {
        for i in (0..n).rev() {
            bits.push((v >> i) & 1 == 1);
        }
    };
    put(0x1FF, 9, &mut bits);
    put(6, 4, &mut bits);
    for &b in data {
        put(u32::from(b), 8, &mut bits);
        if b == 0xFF {
            put(0, 1, &mut bits);
        }
    }
    put(0x1FF, 9, &mut bits);
    put(4, 4, &mut bits);
    while !bits.len().is_multiple_of(32) {
        bits.push(false);
    }
    bits.chunks(8)
        .map(|c| c.iter().fold(0u8, |a, b| (a << 1) | u8::from(*b)))
        .collect()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    s.match_indices(start)
        .filter_map(|(i, _)| {
            let rest = &s[i + start.len()..];
            rest.find(end).map(|j| &rest[..j])
        })
        .collect()
}

/// Rendered XML of the first `n` records of a sample `.evtx` file (as WEF would carry them).
fn sample_events(n: usize) -> Vec<(u64, String)> {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/windows/evtx/security.evtx"
    ));
    let mut p = evtx::EvtxParser::from_path(path).unwrap();
    p.records()
        .filter_map(Result::ok)
        .take(n)
        .map(|r| (r.event_record_id, r.data))
        .collect()
}

fn wait_weir_action(dir: &Path, action: &str, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let evs: Vec<Value> = events(dir)
            .into_iter()
            .filter(|e| e["event"]["action"] == action)
            .collect();
        if evs.len() >= n {
            return evs;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} {action} events",
            evs.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn validate(config: &Path) -> std::process::Output {
    std::process::Command::new(WEIR)
        .args(["validate", "-c"])
        .arg(config)
        .output()
        .unwrap()
}

/// A work directory, a PKI, free diode and HTTPS ports and an agent config with `extra` keys.
fn setup(extra: &str) -> (tempfile::TempDir, Pki, u16, u16, std::path::PathBuf) {
    let dir = workdir();
    let pki = pki();
    let diode = free_udp();
    let port = free_tcp();
    let config = wec_config(dir.path(), diode, port, &pki, extra);
    (dir, pki, diode, port, config)
}

#[test]
fn windows_event_forwarding_over_https_with_client_certificates() {
    let (dir, pki, diode, port, config) =
        setup("heartbeat_seconds = 1\nmax_latency_seconds = 1\nhost_gone_seconds = 6");
    // `weir validate` loads the TLS material and prints the Group Policy string.
    let out = validate(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!(
            "Server=HTTPS://{HOST}:{port}/wsman/SubscriptionManager/WEC,Refresh=60,IssuerCA={}",
            pki.ca_thumbprint
        )),
        "{printed}"
    );
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let tx = Proc::start(&["tx"], &config);
    rx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let c = client(port, &pki, Some((&pki.client.0, &pki.client.1)));
    let manager = format!("https://{HOST}:{port}/wsman/SubscriptionManager/WEC");

    // Enumerate, UTF-16 as Windows sends it.
    let mid = "uuid:E9802257-6A7D-4C0D-BFA4-E81C7B1C447E";
    let r = post(
        &rt,
        &c,
        &manager,
        text::encode(&enumerate(&manager, mid), Charset::Utf16Le),
        UTF16,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.xml);
    assert_eq!(r.content_type, UTF16);
    let xml = r.xml;
    assert!(xml.contains(
        "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse</a:Action>"
    ));
    assert_eq!(between(&xml, "<a:RelatesTo>", "</a:RelatesTo>"), vec![mid]);
    assert!(xml.contains("<p:OperationID s:mustUnderstand=\"false\">uuid:03A3D1BB-9B16-4847-9F04-C9A8ED38E1E4</p:OperationID>"));
    assert_eq!(between(&xml, "<m:Version>", "</m:Version>").len(), 2);
    assert_eq!(
        between(&xml, "<w:Option Name=\"SubscriptionName\">", "</w:Option>"),
        vec!["plant-security", "sysmon"]
    );
    assert_eq!(
        between(
            &xml,
            "<auth:Thumbprint Role=\"issuer\">",
            "</auth:Thumbprint>"
        ),
        vec![pki.ca_thumbprint.as_str(), pki.ca_thumbprint.as_str()]
    );
    assert!(xml.contains("<Select Path=\"Security\">*</Select><Select Path=\"System\">*</Select>"));
    assert!(xml.contains("*[System[(EventID=1 or EventID=3)]]"));
    assert!(xml.contains("<w:Heartbeats>PT1.000S</w:Heartbeats>"));
    assert!(xml.contains("<w:MaxTime>PT1.000S</w:MaxTime>"));
    assert!(xml.contains("<w:MaxElements>500</w:MaxElements>"));
    assert_eq!(
        xml.matches("<w:Option Name=\"ReadExistingEvents\" xsi:nil=\"true\"/>")
            .count(),
        1
    );
    assert!(
        !xml.contains("<w:Bookmark>"),
        "no bookmark before the first batch"
    );
    let notify = between(&xml, "<e:NotifyTo><a:Address>", "</a:Address>");
    assert_eq!(notify.len(), 2);
    let sec_to = notify[0].to_owned();
    let sec_id = between(&xml, "<e:Identifier>", "</e:Identifier>")[0].to_owned();
    assert_eq!(
        sec_to,
        format!("https://{HOST}:{port}/wsman/subscriptions/{sec_id}")
    );
    let versions: Vec<String> = between(&xml, "<m:Version>", "</m:Version>")
        .iter()
        .map(|s| s.to_string())
        .collect();

    // End of the enumeration operation: 204.
    let end = format!(
        "{}<s:Body></s:Body></s:Envelope>",
        header(
            "http://schemas.microsoft.com/wbem/wsman/1/wsman/End",
            "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous",
            "uuid:5A622A71-B73A-426E-B1CB-048A6079EB23",
            None,
            ""
        )
    );
    let r = post(
        &rt,
        &c,
        &manager,
        text::encode(&end, Charset::Utf16Le),
        UTF16,
        None,
    )
    .unwrap();
    assert_eq!((r.status, r.xml.as_str()), (204, ""));
    // Windows marks some End messages SLDC without compressing them.
    let r = post(
        &rt,
        &c,
        &manager,
        text::encode(&end, Charset::Utf16Le),
        UTF16,
        Some("SLDC"),
    )
    .unwrap();
    assert_eq!((r.status, r.xml.as_str()), (204, ""));

    // Heartbeat, SLDC-compressed UTF-16: Ack relating to it.
    let hb_mid = "uuid:EEC04F74-A27D-4C3A-AEF5-BC5BF54359BA";
    let r = post(
        &rt,
        &c,
        &sec_to,
        sldc_raw(&text::encode(
            &heartbeat(&sec_to, hb_mid, &sec_id),
            Charset::Utf16Le,
        )),
        UTF16,
        Some("SLDC"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.xml);
    assert!(r
        .xml
        .contains("<a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/Ack</a:Action>"));
    assert_eq!(
        between(&r.xml, "<a:RelatesTo>", "</a:RelatesTo>"),
        vec![hb_mid]
    );
    assert!(r
        .xml
        .contains("<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"));

    // Two batches of real Security events: one UTF-16 + SLDC, one UTF-8.
    let sample = sample_events(60);
    let first: Vec<String> = sample[..25].iter().map(|(_, x)| x.clone()).collect();
    let second: Vec<String> = sample[25..].iter().map(|(_, x)| x.clone()).collect();
    let b1 = events_batch(
        &sec_to,
        "uuid:31652DEB-C9E8-45D6-B3E8-90AC64D48422",
        &sec_id,
        sample[24].0,
        &first,
    );
    let r = post(
        &rt,
        &c,
        &sec_to,
        sldc_raw(&text::encode(&b1, Charset::Utf16Le)),
        UTF16,
        Some("SLDC"),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.xml);
    assert_eq!(
        between(&r.xml, "<a:RelatesTo>", "</a:RelatesTo>"),
        vec!["uuid:31652DEB-C9E8-45D6-B3E8-90AC64D48422"]
    );
    let b2 = events_batch(
        &sec_to,
        "uuid:0B0E2A6B-0000-4000-8000-000000000002",
        &sec_id,
        sample[59].0,
        &second,
    );
    let r = post(&rt, &c, &sec_to, b2.clone().into_bytes(), UTF8, None).unwrap();
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, UTF8),
        "{}",
        r.xml
    );
    // The client did not see that Ack and sends the batch again (same MessageID): acknowledged,
    // not queued twice.
    let r = post(&rt, &c, &sec_to, b2.clone().into_bytes(), UTF8, None).unwrap();
    assert_eq!(r.status, 200, "{}", r.xml);
    assert_eq!(
        between(&r.xml, "<a:RelatesTo>", "</a:RelatesTo>"),
        vec!["uuid:0B0E2A6B-0000-4000-8000-000000000002"]
    );

    wait_class(dir.path(), "windows", 60, Duration::from_secs(30));
    let evs = events(dir.path());
    let win: Vec<&Value> = evs
        .iter()
        .filter(|e| e["weir"]["class"] == "windows")
        .collect();
    assert_eq!(win.len(), 60);
    let mut ids: HashMap<u64, usize> = HashMap::new();
    for e in &win {
        *ids.entry(
            e["winlog"]["record_id"]
                .as_str()
                .map(|s| s.parse().unwrap())
                .or(e["winlog"]["record_id"].as_u64())
                .unwrap(),
        )
        .or_default() += 1;
        assert_eq!(e["weir"]["input"]["type"], "wec");
        assert_eq!(e["weir"]["input"]["peer_ip"], "127.0.0.1");
        assert_eq!(e["weir"]["stream"], "wef");
        assert_eq!(e["labels"]["wec_subscription"], "plant-security");
        assert_eq!(
            e["tls"]["client"]["subject"],
            "CN=hmi-01.plant.local,O=Plant Ltd"
        );
        assert_eq!(e["tls"]["client"]["issuer"], "CN=Weir Test Plant CA");
        assert_eq!(e["tls"]["client"]["hash"]["sha1"], pki.client.2.as_str());
        assert_eq!(
            e["tls"]["client"]["x509"]["subject"]["common_name"],
            serde_json::json!(["hmi-01.plant.local"])
        );
        assert_eq!(e["tls"]["version"], "1.3");
        assert!(e["event"]["original"]
            .as_str()
            .unwrap()
            .contains("<Event xmlns"));
        assert!(e["weir"]["parse_error"].is_null(), "{e}");
    }
    let expected: HashMap<u64, usize> = sample.iter().map(|(id, _)| (*id, 1)).collect();
    assert_eq!(ids, expected, "every record exactly once");
    // Field by field against the same record read from the file by the evtx path.
    let (rid, xml4) = &sample[0];
    let direct = weir_parsers::windows::normalise_xml(
        xml4,
        &weir_parsers::windows::WinContext::new(chrono::Utc::now(), "evtx"),
    );
    let got = win
        .iter()
        .find(|e| {
            e["winlog"]["record_id"] == serde_json::json!(rid)
                || e["winlog"]["record_id"] == serde_json::json!(rid.to_string())
        })
        .unwrap();
    let direct: Value = serde_json::from_slice(&direct.to_json()).unwrap();
    for f in ["event", "winlog", "user", "host", "source", "process"] {
        let mut a = got[f].clone();
        let mut b = direct[f].clone();
        for v in [&mut a, &mut b] {
            if let Some(o) = v.as_object_mut() {
                o.remove("ingested");
                o.remove("created");
            }
        }
        assert_eq!(a, b, "{f}");
    }
    let active = wait_weir_action(dir.path(), "wec-host-active", 1, Duration::from_secs(10));
    assert_eq!(active[0]["host"]["name"], "hmi-01.plant.local");
    assert_eq!(active[0]["labels"]["wec_subscription"], "plant-security");
    assert_eq!(
        active[0]["tls"]["client"]["subject"],
        "CN=hmi-01.plant.local,O=Plant Ltd"
    );

    // The host falls silent (heartbeat 1 s, max latency 1 s: silent after 3 s), then is gone
    // (6 s); contact brings it back.
    let silent = wait_weir_action(dir.path(), "wec-host-silent", 1, Duration::from_secs(15));
    assert_eq!(silent[0]["host"]["name"], "hmi-01.plant.local");
    assert_eq!(silent[0]["event"]["outcome"], "failure");
    wait_weir_action(dir.path(), "wec-host-gone", 1, Duration::from_secs(15));
    let r = post(
        &rt,
        &c,
        &sec_to,
        heartbeat(
            &sec_to,
            "uuid:00000000-0000-4000-8000-00000000000B",
            &sec_id,
        )
        .into_bytes(),
        UTF8,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    wait_weir_action(dir.path(), "wec-host-active", 2, Duration::from_secs(10));

    // The client ends the subscription: Ack and a weir event with its reason.
    let r = post(
        &rt,
        &c,
        &sec_to,
        subscription_end(
            &sec_to,
            "uuid:21DF76D2-A1ED-4333-BEAB-378AFB012DEE",
            &sec_id,
        )
        .into_bytes(),
        UTF8,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        between(&r.xml, "<a:RelatesTo>", "</a:RelatesTo>"),
        vec!["uuid:21DF76D2-A1ED-4333-BEAB-378AFB012DEE"]
    );
    let ended = wait_weir_action(
        dir.path(),
        "wec-subscription-ended",
        1,
        Duration::from_secs(10),
    );
    assert!(
        ended[0]["message"]
            .as_str()
            .unwrap()
            .contains("SourceCancelling (Windows Event Forward Plugin failed to read events.)"),
        "{}",
        ended[0]
    );

    // Restart: the bookmark of the last acknowledged batch comes back in the subscription, and
    // the subscriptions keep their identifiers and versions.
    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    assert_eq!(summary["wec_batches_total"], 2, "{summary}");
    assert_eq!(summary["wec_batches_repeated_total"], 1, "{summary}");
    assert_eq!(summary["wec_enumerations_total"], 1);
    assert_eq!(summary["wec_heartbeats_total"], 2);
    assert_eq!(summary["wec_subscription_ends_total"], 1);
    assert_eq!(summary["wec_faults_total"], 0);
    let saved: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state/wef.wec-bookmarks.json")).unwrap(),
    )
    .unwrap();
    let want = format!("<BookmarkList><Bookmark Channel=\"Security\" RecordId=\"{}\" IsCurrent=\"true\"/></BookmarkList>", sample[59].0);
    assert_eq!(
        saved[&sec_id]["hmi-01.plant.local"]["bookmark"],
        want.as_str()
    );
    assert_eq!(
        saved[&sec_id]["hmi-01.plant.local"]["last_batch"],
        "uuid:0B0E2A6B-0000-4000-8000-000000000002"
    );
    let tx = Proc::start(&["tx"], &config);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    let r = post(
        &rt,
        &c,
        &manager,
        text::encode(
            &enumerate(&manager, "uuid:E9802257-6A7D-4C0D-BFA4-000000000002"),
            Charset::Utf16Le,
        ),
        UTF16,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let again: Vec<String> = between(&r.xml, "<m:Version>", "</m:Version>")
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(again, versions);
    assert_eq!(
        between(&r.xml, "<w:Bookmark>", "</w:Bookmark>"),
        vec![want.as_str()]
    );
    assert_eq!(
        between(&r.xml, "<e:Identifier>", "</e:Identifier>")[0],
        sec_id
    );
    // Sent again after the restart: still recognised (the id is kept with the bookmark).
    let r = post(&rt, &c, &sec_to, b2.into_bytes(), UTF8, None).unwrap();
    assert_eq!(r.status, 200, "{}", r.xml);
    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    assert_eq!(summary["wec_batches_repeated_total"], 1, "{summary}");
    assert_eq!(summary["wec_batches_total"], 0, "{summary}");
    std::thread::sleep(Duration::from_millis(300));
    rx.stop();
    assert_ecs(&events(dir.path()));
    assert_eq!(class_count(dir.path(), "windows"), 60);
}

#[test]
fn validate_refuses_missing_or_bad_tls_material() {
    let (dir, pki, _, _, config) = setup("");
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let out = validate(&config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.key"), "{err}");
    std::fs::remove_file(dir.path().join("client-ca.pem")).unwrap();
    std::fs::write(dir.path().join("server.key"), &pki.server_key).unwrap();
    let out = validate(&config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the client CA"), "{err}");
    // A query that is not a QueryList is refused when the config is read.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("query = \"<QueryList>", "query = \"<Query>");
    std::fs::write(&config, text).unwrap();
    let out = validate(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("subscriptions[1] (sysmon).query"), "{err}");
}

#[test]
fn refusals_faults_and_limits_leave_other_clients_unaffected() {
    let (dir, pki, diode, port, config) =
        setup("max_envelope_bytes = 65536\nmax_connections = 4\nmax_connections_per_address = 4");
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let tx = Proc::start(&["tx"], &config);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    rx.wait_tcp(addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let good = client(port, &pki, Some((&pki.client.0, &pki.client.1)));
    let manager = format!("https://{HOST}:{port}/wsman/SubscriptionManager/WEC");
    let enum_body =
        || enumerate(&manager, "uuid:11111111-0000-4000-8000-000000000001").into_bytes();

    // A certificate from another CA, and no certificate at all: the handshake fails.
    let rogue = client(port, &pki, Some((&pki.rogue.0, &pki.rogue.1)));
    assert!(post(&rt, &rogue, &manager, enum_body(), UTF8, None).is_err());
    let anonymous = client(port, &pki, None);
    assert!(post(&rt, &anonymous, &manager, enum_body(), UTF8, None).is_err());

    let fault_of = |r: &Reply| -> String {
        assert_eq!(r.status, 500, "{}", r.xml);
        between(&r.xml, "<s:Subcode><s:Value>", "</s:Value>")[0].to_owned()
    };
    // Not XML.
    let r = post(
        &rt,
        &good,
        &manager,
        b"this is not an envelope".to_vec(),
        UTF8,
        None,
    )
    .unwrap();
    assert_eq!(fault_of(&r), "w:SchemaValidationError");
    // UTF-16 declared, odd length.
    let r = post(&rt, &good, &manager, vec![0xFF, 0xFE, 0x3C], UTF16, None).unwrap();
    assert_eq!(fault_of(&r), "w:SchemaValidationError");
    // No MessageID.
    let no_mid = enumerate(&manager, "").replace("<a:MessageID></a:MessageID>", "");
    let r = post(&rt, &good, &manager, no_mid.into_bytes(), UTF8, None).unwrap();
    assert_eq!(fault_of(&r), "a:InvalidMessageInformationHeader");
    // An action the collector does not take.
    let odd = enumerate(&manager, "uuid:2").replace("enumeration/Enumerate<", "enumeration/Pull<");
    let r = post(&rt, &good, &manager, odd.into_bytes(), UTF8, None).unwrap();
    assert_eq!(fault_of(&r), "a:ActionNotSupported");
    assert!(r.xml.contains("<a:RelatesTo>uuid:2</a:RelatesTo>"));
    // Events for a subscription that does not exist.
    let to =
        format!("https://{HOST}:{port}/wsman/subscriptions/00000000-0000-0000-0000-000000000000");
    let r = post(
        &rt,
        &good,
        &to,
        heartbeat(&to, "uuid:3", "00000000-0000-0000-0000-000000000000").into_bytes(),
        UTF8,
        None,
    )
    .unwrap();
    assert_eq!(fault_of(&r), "a:DestinationUnreachable");
    // Larger than max_envelope_bytes (+ 64 KiB).
    let big = vec![b'x'; 200_000];
    let r = post(&rt, &good, &manager, big, UTF8, None).unwrap();
    assert_eq!(fault_of(&r), "w:EncodingLimit");
    // An SLDC body that is not SLDC nor text.
    let r = post(
        &rt,
        &good,
        &manager,
        vec![0x41, 0x42, 0x43, 0x00],
        UTF8,
        Some("SLDC"),
    )
    .unwrap();
    assert_eq!(fault_of(&r), "w:EncodingLimit");
    // Another content encoding, another method.
    let r = post(&rt, &good, &manager, enum_body(), UTF8, Some("gzip")).unwrap();
    assert_eq!(r.status, 415);
    let get = rt.block_on(good.get(&manager).send()).unwrap();
    assert_eq!(get.status().as_u16(), 405);

    // Slow clients: three connections that never start a handshake hold three of the four
    // slots; a real client still gets through on the fourth.
    drop(good);
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let fresh = client(port, &pki, Some((&pki.client.0, &pki.client.1)));
    let r = post(&rt, &fresh, &manager, enum_body(), UTF8, None).unwrap();
    assert_eq!(r.status, 200);
    // A fifth connection while four are held (the fresh client keeps its connection open)
    // is closed at once.
    let extra = client(port, &pki, Some((&pki.client.0, &pki.client.1)));
    assert!(post(&rt, &extra, &manager, enum_body(), UTF8, None).is_err());
    drop(idle);
    drop(fresh);
    std::thread::sleep(Duration::from_millis(300));
    let again = client(port, &pki, Some((&pki.client.0, &pki.client.1)));
    let r = post(&rt, &again, &manager, enum_body(), UTF8, None).unwrap();
    assert_eq!(
        r.status, 200,
        "the endpoint serves again once slots are free"
    );

    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    assert!(!log.contains("panicked"));
    assert_eq!(summary["wec_faults_total"], 9, "{summary}"); // 7 SOAP faults, 415, 405
    assert!(
        summary["wec_tls_refused_total"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    assert!(
        summary["connections_refused_total"]["max_connections"]
            .as_u64()
            .unwrap()
            >= 1,
        "{summary}"
    );
    rx.stop();
}

/// An empty bookmark file (what a power loss can leave): the agent starts, moves it aside and
/// says so in a `weir` event; hosts then start as new ones.
#[test]
fn an_empty_bookmark_file_is_set_aside_and_the_endpoint_starts() {
    let (dir, _pki, diode, port, config) = setup("");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let path = dir.path().join("state/wef.wec-bookmarks.json");
    std::fs::write(&path, b"").unwrap();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let tx = Proc::start(&["tx"], &config);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    wait_class(dir.path(), "weir", 1, Duration::from_secs(10));
    let (ok, _, log) = tx.stop();
    assert!(ok, "{log}");
    assert!(log.contains("WEC bookmark file damaged"), "{log}");
    assert!(!path.exists());
    assert!(dir
        .path()
        .join("state/wef.wec-bookmarks.json.damaged")
        .exists());
    let evs = events(dir.path());
    let damaged: Vec<_> = evs
        .iter()
        .filter(|e| e["event"]["action"] == "state-file-damaged")
        .collect();
    assert_eq!(damaged.len(), 1, "{evs:?}");
    assert!(damaged[0]["message"]
        .as_str()
        .unwrap()
        .contains("was damaged (0 bytes"));
    rx.stop();
}

/// Issue #21's acceptance: `kill -9` of the agent while a Windows host delivers. The host sends
/// batches one after another as Windows does, sending a batch again until it gets its Ack; the
/// agent is killed twice at random moments and restarted. Every event of every Acked batch
/// reaches the receiver: an Ack waits until the batch is on the link and in the agent's synced
/// session ledger.
#[test]
fn every_acked_wef_event_survives_kill_9_of_the_agent() {
    let (dir, pki, diode, port, config) = setup("");
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let mut tx = Some(Proc::start(&["tx"], &config));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tx.as_ref().unwrap().wait_tcp(addr);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let c = client(port, &pki, Some((&pki.client.0, &pki.client.1)));
    let manager = format!("https://{HOST}:{port}/wsman/SubscriptionManager/WEC");
    let r = post(
        &rt,
        &c,
        &manager,
        enumerate(&manager, "uuid:E9802257-6A7D-4C0D-BFA4-E81C7B1C4471").into_bytes(),
        UTF8,
        None,
    )
    .unwrap();
    let sec_to = between(&r.xml, "<e:NotifyTo><a:Address>", "</a:Address>")[0].to_owned();
    let sec_id = between(&r.xml, "<e:Identifier>", "</e:Identifier>")[0].to_owned();
    let sample = sample_events(300);
    let mut acked: Vec<u64> = Vec::new();
    let mut kills = 0;
    let started = Instant::now();
    for (b, chunk) in sample.chunks(10).enumerate() {
        let events: Vec<String> = chunk.iter().map(|(_, x)| x.clone()).collect();
        let mid = format!("uuid:0B0E2A6B-0000-4000-8000-{b:012}");
        let body = events_batch(&sec_to, &mid, &sec_id, chunk[chunk.len() - 1].0, &events);
        loop {
            // Kill the agent while batch 9 and batch 21 are on their way.
            if (b == 9 && kills == 0) || (b == 21 && kills == 1) {
                let victim = tx.take().unwrap();
                let killer = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(3));
                    drop(victim); // SIGKILL
                });
                let _ = post(&rt, &c, &sec_to, body.clone().into_bytes(), UTF8, None);
                killer.join().unwrap();
                kills += 1;
                tx = Some(Proc::start(&["tx"], &config));
                tx.as_ref().unwrap().wait_tcp(addr);
                continue; // that batch's Ack is not known: send it again, as Windows would
            }
            match post(&rt, &c, &sec_to, body.clone().into_bytes(), UTF8, None) {
                Ok(r) if r.status == 200 && r.xml.contains("Ack") => {
                    acked.extend(chunk.iter().map(|(id, _)| *id));
                    break;
                }
                _ => {
                    assert!(started.elapsed() < Duration::from_secs(120), "stuck at {b}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
    assert_eq!(kills, 2);
    assert_eq!(acked.len(), 300);
    wait_class(dir.path(), "windows", 300, Duration::from_secs(30));
    let (ok, _, log) = tx.take().unwrap().stop();
    assert!(ok, "{log}");
    std::thread::sleep(Duration::from_millis(300));
    rx.stop();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for e in events(dir.path())
        .iter()
        .filter(|e| e["weir"]["class"] == "windows")
    {
        let id = e["winlog"]["record_id"]
            .as_str()
            .map(|s| s.parse().unwrap())
            .or(e["winlog"]["record_id"].as_u64())
            .unwrap();
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<u64> = acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .copied()
        .collect();
    assert!(missing.is_empty(), "Acked but never delivered: {missing:?}");
    let unclean = events(dir.path())
        .iter()
        .filter(|e| e["event"]["action"] == "agent-unclean-stop")
        .count();
    assert_eq!(unclean, 2);
}

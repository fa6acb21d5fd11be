#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::envelope::{parse, EnvelopeError};
use super::reply::{ack, enumerate_response, fault, Fault, Offer};
use super::text::{decode, Charset};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Checks that `xml` is well-formed (every start tag closed, one root).
fn well_formed(xml: &str) {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut depth = 0i32;
    loop {
        match r.read_event().unwrap() {
            quick_xml::events::Event::Start(_) => depth += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0);
}

/// A heartbeat exactly as a Windows 10 client sent it (SLDC, UTF-16), from the capture
/// published in OpenWEC's protocol analysis (samples/wef/MANIFEST.md).
#[test]
fn windows_heartbeat_capture() {
    let compressed = hex(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/wef/heartbeat.sldc.hex"
    )));
    let body = sldc::decompress(&compressed, 1 << 20).unwrap();
    assert_eq!(&body[..2], &[0xFF, 0xFE], "UTF-16LE with a byte-order mark");
    let (xml, charset) = decode(&body, Some(Charset::Utf16Le)).unwrap();
    assert_eq!(charset, Charset::Utf16Le);
    assert!(xml.ends_with("</s:Envelope>"), "{xml}");
    let env = parse(&xml).unwrap();
    assert_eq!(env.action, ACTION_HEARTBEAT);
    assert_eq!(env.message_id, "uuid:EEC04F74-A27D-4C3A-AEF5-BC5BF54359BA");
    assert_eq!(env.machine_id.as_deref(), Some("win10.windomain.local"));
    assert_eq!(
        env.identifier.as_deref(),
        Some("219C5353-5F3D-4CD7-A644-F6B69E57C1C1")
    );
    assert_eq!(
        env.to.as_deref(),
        Some("http://srv.windomain.local:5985/wsman/subscriptions/B6BDBB59-FB07-4EE5-841F-EBEC9D67CDD4/1")
    );
    assert_eq!(
        env.operation_id.as_deref(),
        Some("uuid:EA2EE566-2CC1-49A0-A726-BCE7DC356E22")
    );
    assert!(env.ack_requested);
    assert!(env.events.is_empty());
    assert_eq!(env.bookmark, None);
}

const EVENTS: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">
<s:Header>
<a:To>https://wec.plant.local:5986/wsman/subscriptions/ABC</a:To>
<m:MachineID xmlns:m="http://schemas.microsoft.com/wbem/wsman/1/machineid" s:mustUnderstand="false">hmi-01.plant.local
</m:MachineID>
<a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
<a:Action s:mustUnderstand="true">http://schemas.dmtf.org/wbem/wsman/1/wsman/Events</a:Action>
<a:MessageID>uuid:31652DEB-C9E8-45D6-B3E8-90AC64D48422</a:MessageID>
<p:OperationID s:mustUnderstand="false">uuid:C7F39CB2-8FFD-4DA3-A111-CDB303EEA098</p:OperationID>
<p:SequenceId s:mustUnderstand="false">1</p:SequenceId>
<e:Identifier xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing">ABC</e:Identifier>
<w:Bookmark><BookmarkList><Bookmark Channel="Security" RecordId="72207" IsCurrent="true"/></BookmarkList></w:Bookmark>
<w:AckRequested/>
</s:Header>
<s:Body><w:Events>
<w:Event Action="http://schemas.dmtf.org/wbem/wsman/1/wsman/Event"><![CDATA[<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4624</EventID></System></Event>]]></w:Event>
<w:Event Action="http://schemas.dmtf.org/wbem/wsman/1/wsman/Event">&lt;Event&gt;&lt;System&gt;&lt;EventID&gt;4625&lt;/EventID&gt;&lt;/System&gt;&lt;/Event&gt;</w:Event>
<w:Event Action="http://schemas.dmtf.org/wbem/wsman/1/wsman/Event"><Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><EventID>4634</EventID></System></Event></w:Event>
</w:Events></s:Body></s:Envelope>"#;

#[test]
fn events_batch() {
    let env = parse(EVENTS).unwrap();
    assert_eq!(env.action, ACTION_EVENTS);
    assert_eq!(env.machine_id.as_deref(), Some("hmi-01.plant.local"));
    assert_eq!(env.identifier.as_deref(), Some("ABC"));
    assert_eq!(env.sequence_id.as_deref(), Some("1"));
    assert!(env.ack_requested);
    assert_eq!(
        env.bookmark.as_deref(),
        Some(
            r#"<BookmarkList><Bookmark Channel="Security" RecordId="72207" IsCurrent="true"/></BookmarkList>"#
        )
    );
    assert_eq!(
        env.events,
        vec![
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><EventID>4624</EventID></System></Event>".to_owned(),
            "<Event><System><EventID>4625</EventID></System></Event>".to_owned(),
            "<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><EventID>4634</EventID></System></Event>".to_owned(),
        ]
    );
    // The same envelope in UTF-16 reads the same.
    let utf16 = text::encode(EVENTS, Charset::Utf16Le);
    let (again, _) = decode(&utf16, None).unwrap();
    assert_eq!(parse(&again).unwrap(), env);
}

#[test]
fn subscription_end() {
    let xml = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing"><s:Header><a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/eventing/SubscriptionEnd</a:Action><a:MessageID>uuid:21DF76D2-A1ED-4333-BEAB-378AFB012DEE</a:MessageID><e:Identifier>0C98CAE1</e:Identifier><w:AckRequested xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"/></s:Header><s:Body><e:SubscriptionEnd><e:SubscriptionManager><a:Address>https://wec/wsman/subscriptions/0C98CAE1</a:Address><a:ReferenceProperties><e:Identifier>820FEC3F</e:Identifier></a:ReferenceProperties></e:SubscriptionManager><e:Status>http://schemas.xmlsoap.org/ws/2004/08/eventing/SourceCancelling</e:Status><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="1717" Machine="win10"><f:Message><f:ProviderFault provider="Unknown provider" path="Unknown path"><t:ProviderError xmlns:t="http://schemas.microsoft.com/wbem/wsman/1/windows/EventLog">Windows Event Forward Plugin failed to read events.</t:ProviderError></f:ProviderFault></f:Message></f:WSManFault></e:SubscriptionEnd></s:Body></s:Envelope>"#;
    let env = parse(xml).unwrap();
    assert_eq!(env.action, ACTION_SUBSCRIPTION_END);
    assert_eq!(env.identifier.as_deref(), Some("0C98CAE1"));
    assert!(env.ack_requested);
    assert_eq!(
        env.end_status.as_deref(),
        Some("http://schemas.xmlsoap.org/ws/2004/08/eventing/SourceCancelling")
    );
    assert_eq!(
        env.end_reason.as_deref(),
        Some("Windows Event Forward Plugin failed to read events.")
    );
}

#[test]
fn malformed_envelopes() {
    assert!(matches!(
        parse("<s:Envelope><s:Header>"),
        Err(EnvelopeError::Malformed { .. })
    ));
    assert!(matches!(
        parse("not xml at all"),
        Err(EnvelopeError::Malformed { .. })
    ));
    assert_eq!(
        parse("<Event/>"),
        Err(EnvelopeError::NotAnEnvelope("Event".into()))
    );
    assert_eq!(
        parse("<s:Envelope xmlns:s='x'><s:Header><a:MessageID>1</a:MessageID></s:Header></s:Envelope>"),
        Err(EnvelopeError::NoAction)
    );
    assert_eq!(
        parse("<s:Envelope xmlns:s='x'><s:Header><a:Action>x</a:Action></s:Header></s:Envelope>"),
        Err(EnvelopeError::NoMessageId)
    );
    let deep = format!("<E>{}{}</E>", "<a>".repeat(40), "</a>".repeat(40))
        .replace("<E>", "<Envelope>")
        .replace("</E>", "</Envelope>");
    assert_eq!(parse(&deep), Err(EnvelopeError::TooDeep));
}

fn offer<'a>(bookmark: Option<&'a str>) -> Offer<'a> {
    Offer {
        version: "11111111-2222-5333-8444-555555555555",
        name: "Weir <security>",
        identifier: "AAAAAAAA-BBBB-5CCC-8DDD-EEEEEEEEEEEE",
        address:
            "https://wec.plant.local:5986/wsman/subscriptions/AAAAAAAA-BBBB-5CCC-8DDD-EEEEEEEEEEEE",
        query:
            "<QueryList><Query Id=\"0\"><Select Path=\"Security\">*</Select></Query></QueryList>",
        heartbeat_seconds: 900,
        max_time_seconds: 30,
        max_envelope_bytes: 512_000,
        max_items: Some(1000),
        content_format: "RenderedText",
        read_existing_events: true,
        compression: true,
        utf8: false,
        issuer_thumbprint: "0123456789ABCDEF0123456789ABCDEF01234567",
        bookmark,
        message_id: "uuid:99999999-0000-4000-8000-000000000001",
    }
}

#[test]
fn enumerate_response_offers_each_subscription() {
    let req = parse(&EVENTS.replace(ACTION_EVENTS, ACTION_ENUMERATE)).unwrap();
    let bm = r#"<BookmarkList><Bookmark Channel="Security" RecordId="72207" IsCurrent="true"/></BookmarkList>"#;
    let xml = enumerate_response(&req, "uuid:RESP", &[offer(Some(bm)), offer(None)]);
    well_formed(&xml);
    for needle in [
        "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse</a:Action>",
        "<a:MessageID>uuid:RESP</a:MessageID>",
        "<a:RelatesTo>uuid:31652DEB-C9E8-45D6-B3E8-90AC64D48422</a:RelatesTo>",
        "<p:OperationID s:mustUnderstand=\"false\">uuid:C7F39CB2-8FFD-4DA3-A111-CDB303EEA098</p:OperationID>",
        "<m:Version>uuid:11111111-2222-5333-8444-555555555555</m:Version>",
        "<w:Option Name=\"SubscriptionName\">Weir &lt;security&gt;</w:Option>",
        "<w:Option Name=\"Compression\">SLDC</w:Option>",
        "<w:Option Name=\"ContentFormat\">RenderedText</w:Option>",
        "<w:Option Name=\"ReadExistingEvents\" xsi:nil=\"true\"/>",
        "<e:Delivery Mode=\"http://schemas.dmtf.org/wbem/wsman/1/wsman/Events\"><w:Heartbeats>PT900.000S</w:Heartbeats>",
        "<auth:Authentication Profile=\"http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual\"><auth:ClientCertificate><auth:Thumbprint Role=\"issuer\">0123456789ABCDEF0123456789ABCDEF01234567</auth:Thumbprint>",
        "<w:MaxTime>PT30.000S</w:MaxTime>",
        "<w:MaxEnvelopeSize Policy=\"Notify\">512000</w:MaxEnvelopeSize>",
        "<w:MaxElements>1000</w:MaxElements>",
        "<w:ContentEncoding>UTF-16</w:ContentEncoding>",
        "<w:Filter Dialect=\"http://schemas.microsoft.com/win/2004/08/events/eventquery\"><QueryList><Query Id=\"0\"><Select Path=\"Security\">*</Select></Query></QueryList></w:Filter>",
        "<w:Bookmark><BookmarkList><Bookmark Channel=\"Security\" RecordId=\"72207\" IsCurrent=\"true\"/></BookmarkList></w:Bookmark><w:SendBookmarks/>",
        "</w:Items><w:EndOfSequence/></n:EnumerateResponse>",
    ] {
        assert!(xml.contains(needle), "missing {needle}\nin {xml}");
    }
    assert_eq!(xml.matches("<m:Subscription ").count(), 2);
    assert_eq!(xml.matches("<w:Bookmark>").count(), 1);
    assert_eq!(
        xml.matches("<a:Address>https://wec.plant.local:5986/wsman/subscriptions/AAAAAAAA-BBBB-5CCC-8DDD-EEEEEEEEEEEE</a:Address><a:ReferenceProperties><e:Identifier>AAAAAAAA-BBBB-5CCC-8DDD-EEEEEEEEEEEE</e:Identifier></a:ReferenceProperties>").count(),
        4,
        "EndTo and NotifyTo of both offers"
    );
}

#[test]
fn ack_and_faults() {
    let req = parse(EVENTS).unwrap();
    let a = ack(&req, "uuid:ACK");
    well_formed(&a);
    let back = parse(&a).unwrap();
    assert_eq!(back.action, ACTION_ACK);
    assert_eq!(back.message_id, "uuid:ACK");
    assert!(a.contains("<a:RelatesTo>uuid:31652DEB-C9E8-45D6-B3E8-90AC64D48422</a:RelatesTo>"));
    assert!(
        a.contains("<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>")
    );
    let f = fault(
        Some(&req),
        "uuid:F",
        Fault::EncodingLimit,
        "body > 512000 & more",
    );
    well_formed(&f);
    assert!(f.contains("<s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:EncodingLimit</s:Value>"));
    assert!(f.contains("<a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"));
    assert!(f.contains("body &gt; 512000 &amp; more"));
    let f = fault(
        None,
        "uuid:G",
        Fault::DestinationUnreachable,
        "no such subscription",
    );
    well_formed(&f);
    assert!(!f.contains("RelatesTo"));
    assert!(
        f.contains("<a:Action>http://schemas.xmlsoap.org/ws/2004/08/addressing/fault</a:Action>")
    );
    assert_eq!(Fault::InternalError.name(), "InternalError");
}

#[test]
fn helpers() {
    let a = stable_guid(&["weir", "security"]);
    assert_eq!(a, stable_guid(&["weir", "security"]));
    assert_ne!(a, stable_guid(&["weirs", "ecurity"]));
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "5");
    assert_eq!(
        query_for_channels(&["Security".into(), "Microsoft-Windows-Sysmon/Operational".into()]),
        "<QueryList><Query Id=\"0\"><Select Path=\"Security\">*</Select><Select Path=\"Microsoft-Windows-Sysmon/Operational\">*</Select></Query></QueryList>"
    );
    assert_eq!(
        thumbprint(b"abc"),
        "A9993E364706816ABA3E25717850C26C9CD0D89D"
    );
}

#[test]
fn queries_are_checked() {
    assert_eq!(
        check_query(&query_for_channels(&["Security".into()])),
        Ok(())
    );
    assert!(check_query("<QueryList><Query Id='0'></Query></QueryList>")
        .unwrap_err()
        .contains("no Select"));
    assert!(check_query("<Query><Select Path='x'>*</Select></Query>")
        .unwrap_err()
        .contains("not QueryList"));
    assert!(check_query("<QueryList><Query>").is_err());
    assert!(check_query("").is_err());
}

#![allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

/// A 4624 as `wevtutil qe Security /f:xml` prints it (Windows Server 2019; values from the
/// event's documentation page, "4624(S): An account was successfully logged on").
const LOGON_4624: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-A5BA-3E3B0328C30D}" /><EventID>4624</EventID><Version>2</Version><Level>0</Level><Task>12544</Task><Opcode>0</Opcode><Keywords>0x8020000000000000</Keywords><TimeCreated SystemTime="2015-11-12T00:24:35.079785200Z" /><EventRecordID>211</EventRecordID><Correlation ActivityID="{00D66690-1CDF-0000-AC66-D600DF1CD101}" /><Execution ProcessID="716" ThreadID="760" /><Channel>Security</Channel><Computer>WIN-GG82ULGC9GO</Computer><Security /></System><EventData><Data Name="SubjectUserSid">S-1-5-18</Data><Data Name="SubjectUserName">WIN-GG82ULGC9GO$</Data><Data Name="SubjectDomainName">WORKGROUP</Data><Data Name="SubjectLogonId">0x3e7</Data><Data Name="TargetUserSid">S-1-5-21-1377283216-344919071-3415362939-500</Data><Data Name="TargetUserName">Administrator</Data><Data Name="TargetDomainName">WIN-GG82ULGC9GO</Data><Data Name="TargetLogonId">0x8dcdc</Data><Data Name="LogonType">2</Data><Data Name="LogonProcessName">User32</Data><Data Name="AuthenticationPackageName">Negotiate</Data><Data Name="WorkstationName">WIN-GG82ULGC9GO</Data><Data Name="LogonGuid">{00000000-0000-0000-0000-000000000000}</Data><Data Name="TransmittedServices">-</Data><Data Name="LmPackageName">-</Data><Data Name="KeyLength">0</Data><Data Name="ProcessId">0x44c</Data><Data Name="ProcessName">C:\Windows\System32\svchost.exe</Data><Data Name="IpAddress">127.0.0.1</Data><Data Name="IpPort">0</Data><Data Name="ImpersonationLevel">%%1833</Data><Data Name="RestrictedAdminMode">-</Data><Data Name="TargetOutboundUserName">-</Data><Data Name="TargetOutboundDomainName">-</Data><Data Name="VirtualAccount">%%1843</Data><Data Name="TargetLinkedLogonId">0x0</Data><Data Name="ElevatedToken">%%1842</Data></EventData></Event>"#;

/// 1102 (audit log cleared) carries UserData, not EventData; forwarded by WEF with
/// `RenderedText`, so RenderingInfo follows.
const CLEARED_1102: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>
  <System>
    <Provider Name='Microsoft-Windows-Eventlog' Guid='{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}'/>
    <EventID>1102</EventID><Version>0</Version><Level>4</Level><Task>104</Task><Opcode>0</Opcode>
    <Keywords>0x4020000000000000</Keywords>
    <TimeCreated SystemTime='2020-10-19T03:30:54.3910000Z'/>
    <EventRecordID>445920</EventRecordID>
    <Correlation/>
    <Execution ProcessID='1036' ThreadID='4212'/>
    <Channel>Security</Channel>
    <Computer>WORKSTATION5.theshire.local</Computer>
    <Security/>
  </System>
  <UserData>
    <LogFileCleared xmlns='http://manifests.microsoft.com/win/2004/08/windows/eventlog'>
      <SubjectUserSid>S-1-5-21-3940915590-64593676-1414006259-500</SubjectUserSid>
      <SubjectUserName>pgustavo</SubjectUserName>
      <SubjectDomainName>THESHIRE</SubjectDomainName>
      <SubjectLogonId>0xc61d9</SubjectLogonId>
    </LogFileCleared>
  </UserData>
  <RenderingInfo Culture='en-US'>
    <Message>The audit log was cleared.&#13;&#10;Subject:&#9;pgustavo &amp; co &lt;THESHIRE&gt;</Message>
    <Level>Information</Level><Task>Log clear</Task><Opcode>Info</Opcode>
    <Channel>Security</Channel><Provider>Microsoft Windows security auditing.</Provider>
    <Keywords><Keyword>Audit Success</Keyword><Keyword>Classic</Keyword></Keywords>
  </RenderingInfo>
</Event>"#;

#[test]
fn a_security_logon_reads_field_for_field() {
    let e = parse(LOGON_4624).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event_id, 4624);
    assert_eq!(
        e.provider_name.as_deref(),
        Some("Microsoft-Windows-Security-Auditing")
    );
    assert_eq!(
        e.provider_guid.as_deref(),
        Some("{54849625-5478-4994-A5BA-3E3B0328C30D}")
    );
    assert_eq!(e.version, Some(2));
    assert_eq!(e.level, Some(0));
    assert_eq!(e.task, Some(12544));
    assert_eq!(e.opcode, Some(0));
    assert_eq!(e.keywords, Some(0x8020_0000_0000_0000));
    assert_eq!(
        e.time_created.map(|t| t.to_rfc3339()),
        Some("2015-11-12T00:24:35.079785200+00:00".to_owned())
    );
    assert_eq!(e.record_id, Some(211));
    assert_eq!(
        e.activity_id.as_deref(),
        Some("{00D66690-1CDF-0000-AC66-D600DF1CD101}")
    );
    assert_eq!((e.process_id, e.thread_id), (Some(716), Some(760)));
    assert_eq!(e.channel.as_deref(), Some("Security"));
    assert_eq!(e.computer.as_deref(), Some("WIN-GG82ULGC9GO"));
    assert_eq!(e.user_id, None);
    assert_eq!(e.event_data.len(), 27);
    assert_eq!(e.data("TargetUserName"), Some("Administrator"));
    assert_eq!(e.data("LogonType"), Some("2"));
    assert_eq!(
        e.data("ProcessName"),
        Some(r"C:\Windows\System32\svchost.exe")
    );
    assert_eq!(e.data("ElevatedToken"), Some("%%1842"));
    assert_eq!(e.user_data_name, None);
    assert_eq!(e.rendering, None);
}

#[test]
fn user_data_and_rendering_info_with_entities_and_whitespace() {
    let e = parse(CLEARED_1102).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event_id, 1102);
    assert_eq!(e.level, Some(4));
    assert_eq!(e.keywords, Some(0x4020_0000_0000_0000));
    assert_eq!(e.activity_id, None);
    assert!(e.event_data.is_empty());
    assert_eq!(e.user_data_name.as_deref(), Some("LogFileCleared"));
    assert_eq!(
        e.user_data,
        vec![
            (
                "SubjectUserSid".to_owned(),
                "S-1-5-21-3940915590-64593676-1414006259-500".to_owned()
            ),
            ("SubjectUserName".to_owned(), "pgustavo".to_owned()),
            ("SubjectDomainName".to_owned(), "THESHIRE".to_owned()),
            ("SubjectLogonId".to_owned(), "0xc61d9".to_owned()),
        ]
    );
    let r = e.rendering.unwrap_or_default();
    assert_eq!(r.culture.as_deref(), Some("en-US"));
    assert_eq!(
        r.message.as_deref(),
        Some("The audit log was cleared.\r\nSubject:\tpgustavo & co <THESHIRE>")
    );
    assert_eq!(r.task.as_deref(), Some("Log clear"));
    assert_eq!(r.keywords, vec!["Audit Success", "Classic"]);
    assert_eq!(
        r.provider.as_deref(),
        Some("Microsoft Windows security auditing.")
    );
}

#[test]
fn unnamed_data_becomes_param_n_and_empty_data_is_kept() {
    let xml = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Service Control Manager" EventSourceName="Service Control Manager"/><EventID Qualifiers="16384">7036</EventID><Channel>System</Channel><Computer>hmi-01</Computer><Security UserID="S-1-5-18"/></System><EventData><Data>Windows Update</Data><Data/><Data>running</Data><Binary>770075006100750073006500720076002F0034000000</Binary></EventData></Event>"#;
    let e = parse(xml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.event_id, 7036);
    assert_eq!(e.qualifiers, Some(16384));
    assert_eq!(
        e.event_source_name.as_deref(),
        Some("Service Control Manager")
    );
    assert_eq!(e.user_id.as_deref(), Some("S-1-5-18"));
    assert_eq!(
        e.event_data,
        vec![
            ("param1".to_owned(), "Windows Update".to_owned()),
            ("param2".to_owned(), String::new()),
            ("param3".to_owned(), "running".to_owned()),
        ]
    );
    assert_eq!(
        e.binary.as_deref(),
        Some("770075006100750073006500720076002F0034000000")
    );
}

#[test]
fn what_is_not_a_windows_event_is_refused_with_a_reason() {
    let deep = format!(
        "<Event><System><EventID>1</EventID></System><EventData>{}{}</EventData></Event>",
        "<a>".repeat(40),
        "</a>".repeat(40)
    );
    for (xml, want) in [
        ("", "malformed"),
        ("<Event><System><EventID>1</EventID></System>", "malformed"),
        (
            "<Event><System><EventID>1</EventID></Sys></Event>",
            "malformed",
        ),
        ("<Events><Event/></Events>", "not"),
        (
            "<Event><System><EventID>x</EventID></System></Event>",
            "EventID",
        ),
        ("<Event><System/></Event>", "EventID"),
        (
            "<Event><System><EventID>1</EventID></System></Event><Event/>",
            "malformed",
        ),
        (deep.as_str(), "deeper"),
    ] {
        let err = parse(xml).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(want), "{xml:?}: {err}");
    }
    // The smallest well-formed event.
    let e = parse("<Event><System><EventID>1</EventID></System></Event>");
    assert_eq!(e.map(|e| e.event_id), Ok(1));
}

/// The single-pass scanner and the general reader agree: on the documents above, on each of a
/// set of variants (quoting, prefixes, references, white space, what the scanner leaves to the
/// general reader) and on every prefix of each (documents cut short).
#[test]
fn the_scanner_and_the_general_reader_agree() {
    let mut docs: Vec<String> = [LOGON_4624, CLEARED_1102]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let min = "<Event><System><EventID>7</EventID></System>";
    for body in [
        // Read by the scanner.
        "<EventData><Data Name='a'>x &amp; y &#x41;&#66;</Data><Data>p</Data><Data/><Data Name=\"e\"/></EventData>",
        "<EventData><Data Name = \"a\" >v</Data ></EventData>",
        "<EventData><Data Name=\"a&amp;b\">&lt;&gt;&quot;&apos;</Data></EventData>",
        "<EventData><Data Name=\"bad&nope;\">v</Data><Data>&nope;</Data><Data>&#xZZ;</Data></EventData>",
        "<EventData><Data Name=\"a\">x<b>inner</b>tail</Data><Data Name=\"c\">x<br/>y</Data></EventData>",
        "<UserData><Child xmlns='urn:x'><A>1</A><B><C>2</C></B><D> </D></Child></UserData>",
        "<RenderingInfo Culture='de-DE'><Message>m\r\nn</Message><Keywords><Keyword>k</Keyword></Keywords></RenderingInfo>",
        "<EventData><Binary>00FF</Binary></EventData>",
        // Left to the general reader.
        "<EventData><!-- c --><Data Name='a'>v</Data></EventData>",
        "<EventData><Data Name='a'><![CDATA[<x>]]></Data></EventData>",
        "<EventData><Data Name='a' Name='b'>v</Data></EventData>",
        "<EventData><Data Name=a>v</Data></EventData>",
        "<EventData><Data Name='a'b='c'>v</Data></EventData>",
        "<EventData><Data Name='a'>v & w</Data></EventData>",
        "<EventData><Data Name='a'>v</Dat></EventData>",
        "<EventData><é>v</é></EventData>",
    ] {
        docs.push(format!("{min}{body}</Event>"));
    }
    for (i, prefix) in ["", "<?xml version='1.0'?>\n", "\u{feff}", "  \n"]
        .iter()
        .enumerate()
    {
        docs.push(format!(
            "{prefix}{min}</Event>{}",
            ["", "\n", " x", "<?pi?>"][i]
        ));
    }
    docs.push(
        LOGON_4624
            .replace("<Event ", "<e:Event xmlns:e='urn:e' ")
            .replace("</Event>", "</e:Event>"),
    );
    docs.push(LOGON_4624.replace("System>", "s:System>"));
    docs.push(LOGON_4624.replace("<EventID>4624", "<EventID Qualifiers='16384'>4624"));
    for doc in &docs {
        agree_cut_anywhere(doc);
    }
    // The scanner reads Windows' shapes itself and leaves the rest to the general reader.
    for (i, doc) in docs.iter().enumerate() {
        let read = matches!(i, 0..=9 | 18 | 19 | 22..=24);
        assert_eq!(parse_fast(doc).is_some(), read, "{i}: {doc}");
    }
}

/// `doc` and every prefix of it read the same by [`parse`], the scanner (when it reads them)
/// and the general reader.
fn agree_cut_anywhere(doc: &str) {
    for end in (0..=doc.len()).filter(|e| doc.is_char_boundary(*e)) {
        let part = &doc[..end];
        let general = parse_general(part);
        assert_eq!(parse(part), general, "{part:?}");
        if let Some(fast) = parse_fast(part) {
            assert_eq!(Ok(&fast), general.as_ref(), "{part:?}");
        }
    }
}

/// `<Data Name="x">value</Data>` under `EventData` is read whole; its near misses are read as
/// any element is (or left to the general reader), and every one, cut anywhere, agrees with the
/// general reader.
#[test]
fn the_whole_data_element_and_its_near_misses_agree_with_the_general_reader() {
    let min = "<Event><System><EventID>7</EventID></System><EventData>";
    for (body, read) in [
        // Read whole (empty name and value included), then as any element.
        (
            "<Data Name=\"a\"> x </Data><Data Name=\"\"></Data><Data>w</Data>",
            true,
        ),
        ("<Data Name=\"a\">x&amp;y</Data>", true),
        ("<Data Name=\"a&lt;b\">x</Data>", true),
        ("<Data Name=\"a\" >x</Data>", true),
        ("<Data Name=\"a\">x</Data >", true),
        ("<Data Name=\"a\"/><Data Name=\"b\">y</Data>", true),
        ("<Data Name=\"a\">x<b/>y</Data>", true),
        ("<Data Name=\"a>b\">x</Data>", true),
        ("<DataX Name=\"a\">v</DataX>", true),
        (
            "<Data Name=\"a\">v</Data>\n  <Data Name=\"b\">w</Data>\n",
            true,
        ),
        // Not well-formed, or not a shape the scanner reads.
        ("<Data Name=\"a\">x</Datum>", false),
        ("<Data Name=\"a\">v</DataX>", false),
        ("<Data Name=\"a\">x</Data", false),
        ("<Data Name=\"a\" Name=\"b\">x</Data>", false),
        ("<Data Name=\"a\"x>v</Data>", false),
        ("<Data Name=\"a<\">v</Data>", false),
    ] {
        let doc = format!("{min}{body}</EventData></Event>");
        agree_cut_anywhere(&doc);
        assert_eq!(parse_fast(&doc).is_some(), read, "{doc}");
    }
}

#[test]
fn the_xml_declaration_is_stripped_and_nothing_else() {
    let event =
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System/></Event>";
    let cases = [
        (
            format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{event}"),
            event.to_owned(),
        ),
        (
            format!("  <?xml version='1.0'?>{event}\n"),
            format!("{event}\n"),
        ),
        (event.to_owned(), event.to_owned()),
    ];
    for (input, want) in &cases {
        assert_eq!(strip_declaration(input), want, "{input}");
    }
    // Not a declaration, or an unterminated one: left as it is.
    for input in [
        "<?xml-stylesheet href='a'?><Event/>",
        "<?xml version='1.0'",
        "",
    ] {
        assert_eq!(strip_declaration(input), input);
    }
}

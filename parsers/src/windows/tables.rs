//! Code tables Windows events refer to: logon types, NTSTATUS and Kerberos result codes, the
//! `%%NNNN` message inserts the Security log uses, standard keywords, opcodes, levels and the
//! Security log's task (audit subcategory) names. Sources: Microsoft's "Audit ..." event pages
//! (learn.microsoft.com, Windows security auditing), `winmeta.xml` for keywords, opcodes and
//! levels, RFC 4120 §7.5.9 for Kerberos error codes.

/// `LogonType` → the name Windows documents (and Winlogbeat writes in `winlog.logon.type`).
pub fn logon_type(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "System",
        2 => "Interactive",
        3 => "Network",
        4 => "Batch",
        5 => "Service",
        7 => "Unlock",
        8 => "NetworkCleartext",
        9 => "NewCredentials",
        10 => "RemoteInteractive",
        11 => "CachedInteractive",
        12 => "CachedRemoteInteractive",
        13 => "CachedUnlock",
        _ => return None,
    })
}

/// NTSTATUS values that logon and credential-validation failures (4625, 4776) carry in `Status`
/// and `SubStatus`.
pub fn ntstatus(code: u32) -> Option<&'static str> {
    Some(match code {
        0x0000_0000 => "Status OK.",
        0xC000_005E => "There are currently no logon servers available to service the logon request.",
        0xC000_0064 => "User logon with misspelled or bad user account",
        0xC000_006A => "User logon with misspelled or bad password",
        0xC000_006D => "This is either due to a bad username or authentication information",
        0xC000_006E => "Unknown user name or bad password.",
        0xC000_006F => "User logon outside authorized hours",
        0xC000_0070 => "User logon from unauthorized workstation",
        0xC000_0071 => "User logon with expired password",
        0xC000_0072 => "User logon to account disabled by administrator",
        0xC000_00DC => "Indicates the Sam Server was in the wrong state to perform the desired operation.",
        0xC000_0133 => "Clocks between DC and other computer too far out of sync",
        0xC000_015B => "The user has not been granted the requested logon type (aka logon right) at this machine",
        0xC000_018C => "The logon request failed because the trust relationship between the primary domain and the trusted domain failed.",
        0xC000_0192 => "An attempt was made to logon, but the Netlogon service was not started.",
        0xC000_0193 => "User logon with expired account",
        0xC000_0224 => "User is required to change password at next logon",
        0xC000_0225 => "Evidently a bug in Windows and not a risk",
        0xC000_0234 => "User logon with account locked",
        0xC000_02EE => "Failure Reason: An Error occurred during Logon",
        0xC000_0371 => "The local account store does not contain secret material for the specified account",
        0xC000_0413 => "Logon Failure: The machine you are logging onto is protected by an authentication firewall. The specified account is not allowed to authenticate to the machine.",
        _ => return None,
    })
}

/// The `%%NNNN` inserts of the Security log that matter for mapping (failure reasons, the
/// firewall direction, token elevation types, yes/no).
pub fn message_insert(text: &str) -> Option<&'static str> {
    Some(match text.trim() {
        "%%1832" => "Identification",
        "%%1833" => "Impersonation",
        "%%1840" => "Delegation",
        "%%1842" => "Yes",
        "%%1843" => "No",
        "%%1936" => "TokenElevationTypeDefault (1)",
        "%%1937" => "TokenElevationTypeFull (2)",
        "%%1938" => "TokenElevationTypeLimited (3)",
        "%%2304" => "An Error occured during Logon.",
        "%%2305" => "The specified user account has expired.",
        "%%2306" => "The NetLogon component is not active.",
        "%%2307" => "Account locked out.",
        "%%2308" => "The user has not been granted the requested logon type at this machine.",
        "%%2309" => "The specified account's password has expired.",
        "%%2310" => "Account currently disabled.",
        "%%2311" => "Account logon time restriction violation.",
        "%%2312" => "User not allowed to logon at this computer.",
        "%%2313" => "Unknown user name or bad password.",
        "%%2314" => "Domain sid inconsistent.",
        "%%2315" => "Smartcard logon is required and was not used.",
        "%%14592" => "Inbound",
        "%%14593" => "Outbound",
        _ => return None,
    })
}

/// Kerberos result codes (4768, 4769, 4771 `Status`/`FailureCode`), RFC 4120 §7.5.9 names.
pub fn kerberos_result(code: u32) -> Option<&'static str> {
    Some(match code {
        0x0 => "KDC_ERR_NONE",
        0x1 => "KDC_ERR_NAME_EXP",
        0x2 => "KDC_ERR_SERVICE_EXP",
        0x3 => "KDC_ERR_BAD_PVNO",
        0x4 => "KDC_ERR_C_OLD_MAST_KVNO",
        0x5 => "KDC_ERR_S_OLD_MAST_KVNO",
        0x6 => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        0x7 => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        0x8 => "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
        0x9 => "KDC_ERR_NULL_KEY",
        0xA => "KDC_ERR_CANNOT_POSTDATE",
        0xB => "KDC_ERR_NEVER_VALID",
        0xC => "KDC_ERR_POLICY",
        0xD => "KDC_ERR_BADOPTION",
        0xE => "KDC_ERR_ETYPE_NOTSUPP",
        0xF => "KDC_ERR_SUMTYPE_NOSUPP",
        0x10 => "KDC_ERR_PADATA_TYPE_NOSUPP",
        0x11 => "KDC_ERR_TRTYPE_NO_SUPP",
        0x12 => "KDC_ERR_CLIENT_REVOKED",
        0x13 => "KDC_ERR_SERVICE_REVOKED",
        0x14 => "KDC_ERR_TGT_REVOKED",
        0x15 => "KDC_ERR_CLIENT_NOTYET",
        0x16 => "KDC_ERR_SERVICE_NOTYET",
        0x17 => "KDC_ERR_KEY_EXPIRED",
        0x18 => "KDC_ERR_PREAUTH_FAILED",
        0x19 => "KDC_ERR_PREAUTH_REQUIRED",
        0x1A => "KDC_ERR_SERVER_NOMATCH",
        0x1B => "KDC_ERR_MUST_USE_USER2USER",
        0x1C => "KDC_ERR_PATH_NOT_ACCEPTED",
        0x1D => "KDC_ERR_SVC_UNAVAILABLE",
        0x1F => "KRB_AP_ERR_BAD_INTEGRITY",
        0x20 => "KRB_AP_ERR_TKT_EXPIRED",
        0x21 => "KRB_AP_ERR_TKT_NYV",
        0x22 => "KRB_AP_ERR_REPEAT",
        0x23 => "KRB_AP_ERR_NOT_US",
        0x24 => "KRB_AP_ERR_BADMATCH",
        0x25 => "KRB_AP_ERR_SKEW",
        0x26 => "KRB_AP_ERR_BADADDR",
        0x27 => "KRB_AP_ERR_BADVERSION",
        0x28 => "KRB_AP_ERR_MSG_TYPE",
        0x29 => "KRB_AP_ERR_MODIFIED",
        0x2A => "KRB_AP_ERR_BADORDER",
        0x2C => "KRB_AP_ERR_BADKEYVER",
        0x2D => "KRB_AP_ERR_NOKEY",
        0x2E => "KRB_AP_ERR_MUT_FAIL",
        0x2F => "KRB_AP_ERR_BADDIRECTION",
        0x30 => "KRB_AP_ERR_METHOD",
        0x31 => "KRB_AP_ERR_BADSEQ",
        0x32 => "KRB_AP_ERR_INAPP_CKSUM",
        0x33 => "KRB_AP_PATH_NOT_ACCEPTED",
        0x34 => "KRB_ERR_RESPONSE_TOO_BIG",
        0x3C => "KRB_ERR_GENERIC",
        0x3D => "KRB_ERR_FIELD_TOOLONG",
        0x3E => "KDC_ERR_CLIENT_NOT_TRUSTED",
        0x3F => "KDC_ERR_KDC_NOT_TRUSTED",
        0x40 => "KDC_ERR_INVALID_SIG",
        0x41 => "KDC_ERR_KEY_TOO_WEAK",
        0x42 => "KRB_AP_ERR_USER_TO_USER_REQUIRED",
        0x43 => "KRB_AP_ERR_NO_TGT",
        0x44 => "KDC_ERR_WRONG_REALM",
        _ => return None,
    })
}

/// Names of the standard keyword bits set in `keywords` (`winmeta.xml`), highest bit first as
/// Event Viewer lists them. Provider-defined bits (the low 48) have no standard name.
pub fn keywords(mask: u64) -> Vec<&'static str> {
    const NAMES: [(u64, &str); 8] = [
        (0x0080_0000_0000_0000, "Classic"),
        (0x0040_0000_0000_0000, "Correlation Hint"),
        (0x0020_0000_0000_0000, "Audit Success"),
        (0x0010_0000_0000_0000, "Audit Failure"),
        (0x0008_0000_0000_0000, "SQM"),
        (0x0004_0000_0000_0000, "WDI Diag"),
        (0x0002_0000_0000_0000, "WDI Context"),
        (0x0001_0000_0000_0000, "Response Time"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The standard opcode names (`winmeta.xml`).
pub fn opcode(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "Info",
        1 => "Start",
        2 => "Stop",
        3 => "DCStart",
        4 => "DCStop",
        5 => "Extension",
        6 => "Reply",
        7 => "Resume",
        8 => "Suspend",
        9 => "Send",
        240 => "Receive",
        _ => return None,
    })
}

/// `log.level` for a `System/Level` (lower case, as Winlogbeat writes it). Level 0 ("Log
/// Always", what the Security log uses) reads as `information`, as Event Viewer shows it.
pub fn level(code: u32) -> &'static str {
    match code {
        1 => "critical",
        2 => "error",
        3 => "warning",
        5 => "verbose",
        _ => "information",
    }
}

/// Task names of the Security log (`Microsoft-Windows-Security-Auditing`): the audit
/// subcategories.
pub fn security_task(code: u32) -> Option<&'static str> {
    Some(match code {
        12288 => "Security State Change",
        12289 => "Security System Extension",
        12290 => "System Integrity",
        12291 => "IPsec Driver",
        12292 => "Other System Events",
        12544 => "Logon",
        12545 => "Logoff",
        12546 => "Account Lockout",
        12547 => "IPsec Main Mode",
        12548 => "Special Logon",
        12549 => "IPsec Quick Mode",
        12550 => "IPsec Extended Mode",
        12551 => "Other Logon/Logoff Events",
        12552 => "Network Policy Server",
        12553 => "User / Device Claims",
        12554 => "Group Membership",
        12800 => "File System",
        12801 => "Registry",
        12802 => "Kernel Object",
        12803 => "SAM",
        12804 => "Other Object Access Events",
        12805 => "Certification Services",
        12806 => "Application Generated",
        12807 => "Handle Manipulation",
        12808 => "File Share",
        12809 => "Filtering Platform Packet Drop",
        12810 => "Filtering Platform Connection",
        12811 => "Detailed File Share",
        12812 => "Removable Storage",
        12813 => "Central Policy Staging",
        13056 => "Sensitive Privilege Use",
        13057 => "Non Sensitive Privilege Use",
        13058 => "Other Privilege Use Events",
        13312 => "Process Creation",
        13313 => "Process Termination",
        13314 => "DPAPI Activity",
        13315 => "RPC Events",
        13316 => "Plug and Play Events",
        13317 => "Token Right Adjusted Events",
        13568 => "Audit Policy Change",
        13569 => "Authentication Policy Change",
        13570 => "Authorization Policy Change",
        13571 => "MPSSVC Rule-Level Policy Change",
        13572 => "Filtering Platform Policy Change",
        13573 => "Other Policy Change Events",
        13824 => "User Account Management",
        13825 => "Computer Account Management",
        13826 => "Security Group Management",
        13827 => "Distribution Group Management",
        13828 => "Application Group Management",
        13829 => "Other Account Management Events",
        14080 => "Directory Service Access",
        14081 => "Directory Service Changes",
        14082 => "Directory Service Replication",
        14083 => "Detailed Directory Service Replication",
        14336 => "Credential Validation",
        14337 => "Kerberos Service Ticket Operations",
        14338 => "Other Account Logon Events",
        14339 => "Kerberos Authentication Service",
        _ => return None,
    })
}

/// IANA protocol number → `network.transport`.
pub fn transport(number: u32) -> Option<&'static str> {
    Some(match number {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        50 => "esp",
        58 => "ipv6-icmp",
        132 => "sctp",
        _ => return None,
    })
}

/// A number as Windows writes it: `0x1a4` (hex) or `420` (decimal).
pub fn number(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

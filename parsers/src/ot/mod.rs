//! Industrial protocol parsers. Each protocol module is pure: a framer that says how long the
//! PDU at the start of a stream is, and a parser from one PDU to typed fields. Sessions (stream
//! buffering, request/response matching) live in [`session`]; the sensor
//! ([`crate::sensor`]) turns their transactions into events.
//!
//! Every transaction gets an [`Action`] from one vocabulary shared by all protocols, with the
//! protocol's own function code and name kept beside it.

pub mod bacnet;
pub mod dnp3;
pub mod enip;
pub mod iec104;
pub mod modbus;
pub mod mqtt;
pub mod opcua;
pub mod s7comm;
pub mod session;

use std::borrow::Cow;

/// What an industrial transaction does, whatever the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Reads process data or configuration.
    Read,
    /// Writes process data (registers, coils, variables, points).
    Write,
    /// Operates a control point (DNP3 select/operate, IEC 104 commands).
    Control,
    /// Sends logic or configuration to a controller.
    ProgramDownload,
    /// Fetches logic or configuration from a controller.
    ProgramUpload,
    /// Changes the controller's operating mode (run/stop/program).
    ModeChange,
    /// Restarts a device or its application.
    Restart,
    /// Sets a device's clock.
    TimeSet,
    /// Firmware update or file transfer to the device.
    Firmware,
    /// Discovery and identification (device identity, who-is, list identity, SZL).
    Recon,
    /// Anything else (session management, acknowledgements, unknown functions).
    Other,
}

impl Action {
    /// Every action, in vocabulary order.
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::Write,
        Action::Control,
        Action::ProgramDownload,
        Action::ProgramUpload,
        Action::ModeChange,
        Action::Restart,
        Action::TimeSet,
        Action::Firmware,
        Action::Recon,
        Action::Other,
    ];

    /// The name used in `ot.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Control => "control",
            Action::ProgramDownload => "program_download",
            Action::ProgramUpload => "program_upload",
            Action::ModeChange => "mode_change",
            Action::Restart => "restart",
            Action::TimeSet => "time_set",
            Action::Firmware => "firmware",
            Action::Recon => "recon",
            Action::Other => "other",
        }
    }

    /// True for actions that change a process or a controller: each one is reported on its own
    /// and raises a notable event.
    pub fn is_notable(self) -> bool {
        matches!(
            self,
            Action::Write
                | Action::Control
                | Action::ProgramDownload
                | Action::ProgramUpload
                | Action::ModeChange
                | Action::Restart
                | Action::TimeSet
                | Action::Firmware
        )
    }
}

/// One industrial transaction: a request and its response, or either alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// `modbus`, `dnp3`, `s7comm`, ...
    pub protocol: &'static str,
    /// Weir's action.
    pub action: Action,
    /// The protocol's name for the function.
    pub function: Cow<'static, str>,
    /// The raw function or service code.
    pub function_code: u32,
    /// Unit / station / common address.
    pub unit: Option<u32>,
    /// Transaction or sequence id.
    pub transaction_id: Option<u32>,
    /// First address.
    pub address: Option<u32>,
    /// Quantity.
    pub quantity: Option<u32>,
    /// Values in the request.
    pub request_values: Vec<u32>,
    /// Values in the response.
    pub response_values: Vec<u32>,
    /// Exception name.
    pub exception: Option<Cow<'static, str>>,
    /// Exception code.
    pub exception_code: Option<u32>,
    /// When the request was seen (ns).
    pub request_ns: Option<i64>,
    /// When the response was seen (ns).
    pub response_ns: Option<i64>,
    /// Protocol detail.
    pub detail: Vec<(&'static str, String)>,
}

impl Transaction {
    /// A transaction of `protocol` with nothing but its action and function.
    pub fn new(
        protocol: &'static str,
        action: Action,
        function: Cow<'static, str>,
        code: u32,
    ) -> Transaction {
        Transaction {
            protocol,
            action,
            function,
            function_code: code,
            unit: None,
            transaction_id: None,
            address: None,
            quantity: None,
            request_values: Vec::new(),
            response_values: Vec::new(),
            exception: None,
            exception_code: None,
            request_ns: None,
            response_ns: None,
            detail: Vec::new(),
        }
    }

    /// True when both the request and the response were seen.
    pub fn matched(&self) -> bool {
        self.request_ns.is_some() && self.response_ns.is_some()
    }
}

//! Modbus/TCP (Modbus Application Protocol v1.1b3 and the Modbus Messaging on TCP/IP
//! Implementation Guide v1.0b): MBAP framing, every public function code's request and
//! response, exceptions, and device identification (MEI 0x0E).
//!
//! Pure: [`frame_len`] says how long the ADU at the start of a byte stream is; [`parse`] turns
//! one ADU into a [`Pdu`]. Function names are Zeek's (`READ_HOLDING_REGISTERS`, ...), so SOC
//! content written for Zeek and ICSNPP logs reads Weir's events unchanged.

use super::Action;

/// The MBAP header: transaction id, protocol id (0), length, unit id.
pub const MBAP_LEN: usize = 7;

/// Why bytes on a Modbus port are not a Modbus ADU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ModbusError {
    /// The MBAP protocol id is not 0, or its length is out of 2..=254.
    #[error("not a Modbus/TCP header")]
    NotModbus,
    /// The PDU is shorter than its function requires.
    #[error("truncated Modbus PDU")]
    Truncated,
}

/// The length of the ADU that starts `buf`: `Ok(None)` when more bytes are needed, an error
/// when the bytes cannot be Modbus/TCP.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ModbusError> {
    let (Some(&p0), Some(&p1)) = (buf.get(2), buf.get(3)) else {
        return Ok(None);
    };
    if p0 != 0 || p1 != 0 {
        return Err(ModbusError::NotModbus);
    }
    let (Some(&l0), Some(&l1)) = (buf.get(4), buf.get(5)) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if !(2..=254).contains(&len) {
        return Err(ModbusError::NotModbus);
    }
    Ok(if buf.len() >= 6 + len {
        Some(6 + len)
    } else {
        None
    })
}

/// One Modbus PDU, request or response, with what it addresses and carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pdu {
    /// MBAP transaction id.
    pub tid: u16,
    /// Unit id.
    pub unit: u8,
    /// Function code, exception bit removed.
    pub function: u8,
    /// The exception code, when the response is an exception.
    pub exception: Option<u8>,
    /// First address (register, coil, FIFO pointer; read address for function 23).
    pub address: Option<u16>,
    /// Quantity addressed.
    pub quantity: Option<u16>,
    /// Coil bits or register values carried.
    pub values: Vec<u32>,
    /// Protocol detail: sub-function, MEI type, masks, device identification objects, ...
    pub detail: Vec<(&'static str, String)>,
}

/// Zeek's name for a function code.
pub fn function_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "READ_COILS",
        2 => "READ_DISCRETE_INPUTS",
        3 => "READ_HOLDING_REGISTERS",
        4 => "READ_INPUT_REGISTERS",
        5 => "WRITE_SINGLE_COIL",
        6 => "WRITE_SINGLE_REGISTER",
        7 => "READ_EXCEPTION_STATUS",
        8 => "DIAGNOSTICS",
        11 => "GET_COMM_EVENT_COUNTER",
        12 => "GET_COMM_EVENT_LOG",
        15 => "WRITE_MULTIPLE_COILS",
        16 => "WRITE_MULTIPLE_REGISTERS",
        17 => "REPORT_SLAVE_ID",
        20 => "READ_FILE_RECORD",
        21 => "WRITE_FILE_RECORD",
        22 => "MASK_WRITE_REGISTER",
        23 => "READ_WRITE_MULTIPLE_REGISTERS",
        24 => "READ_FIFO_QUEUE",
        43 => "ENCAP_INTERFACE_TRANSPORT",
        90 => "UMAS", // Schneider Electric's engineering protocol inside function 0x5A
        _ => return None,
    })
}

/// Zeek's name for an exception code.
pub fn exception_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "ILLEGAL_FUNCTION",
        2 => "ILLEGAL_DATA_ADDRESS",
        3 => "ILLEGAL_DATA_VALUE",
        4 => "SLAVE_DEVICE_FAILURE",
        5 => "ACKNOWLEDGE",
        6 => "SLAVE_DEVICE_BUSY",
        8 => "MEMORY_PARITY_ERROR",
        10 => "GATEWAY_PATH_UNAVAILABLE",
        11 => "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
        _ => return None,
    })
}

/// Diagnostics (function 8) sub-function names.
pub fn diagnostic_name(sub: u16) -> Option<&'static str> {
    Some(match sub {
        0 => "Return Query Data",
        1 => "Restart Communications Option",
        2 => "Return Diagnostic Register",
        3 => "Change ASCII Input Delimiter",
        4 => "Force Listen Only Mode",
        10 => "Clear Counters and Diagnostic Register",
        11 => "Return Bus Message Count",
        12 => "Return Bus Communication Error Count",
        13 => "Return Bus Exception Error Count",
        14 => "Return Server Message Count",
        15 => "Return Server No Response Count",
        16 => "Return Server NAK Count",
        17 => "Return Server Busy Count",
        18 => "Return Bus Character Overrun Count",
        20 => "Clear Overrun Counter and Flag",
        _ => return None,
    })
}

/// Schneider UMAS (function 90) codes that change a controller.
fn umas_action(code: u8) -> (Action, &'static str) {
    match code {
        0x02 => (Action::Recon, "READ_ID"),
        0x03 => (Action::Recon, "READ_PROJECT_INFO"),
        0x04 => (Action::Read, "READ_PLC_INFO"),
        0x10 => (Action::Other, "TAKE_PLC_RESERVATION"),
        0x11 => (Action::Other, "RELEASE_PLC_RESERVATION"),
        0x20 => (Action::Read, "READ_MEMORY_BLOCK"),
        0x22 => (Action::Read, "READ_VARIABLES"),
        0x23 => (Action::Write, "WRITE_VARIABLES"),
        0x24 => (Action::Read, "READ_COILS_REGISTERS"),
        0x25 => (Action::Write, "WRITE_COILS_REGISTERS"),
        0x30 => (Action::ProgramDownload, "INITIALIZE_UPLOAD"),
        0x31 => (Action::ProgramDownload, "UPLOAD_BLOCK"),
        0x32 => (Action::ProgramDownload, "END_STRATEGY_UPLOAD"),
        0x33 => (Action::ProgramUpload, "INITIALIZE_DOWNLOAD"),
        0x34 => (Action::ProgramUpload, "DOWNLOAD_BLOCK"),
        0x35 => (Action::ProgramUpload, "END_STRATEGY_DOWNLOAD"),
        0x40 => (Action::ModeChange, "START_PLC"),
        0x41 => (Action::ModeChange, "STOP_PLC"),
        0x50 => (Action::Read, "MONITOR_PLC"),
        0x58 => (Action::Read, "CHECK_PLC"),
        _ => (Action::Other, "UMAS"),
    }
}

/// What a transaction with this request does, in Weir's vocabulary. UMAS upload and download
/// are named from the engineering station's side: Schneider's "upload" writes to the PLC.
pub fn action(request: &Pdu) -> Action {
    match request.function {
        1..=4 | 7 | 20 | 24 => Action::Read,
        5 | 6 | 15 | 16 | 21..=23 => Action::Write,
        8 => match request
            .detail
            .iter()
            .find(|(k, _)| *k == "sub_function_code")
            .map(|(_, v)| v.as_str())
        {
            Some("1") => Action::Restart,
            Some("4") => Action::ModeChange,
            Some("10") | Some("20") => Action::Write,
            _ => Action::Read,
        },
        11 | 12 | 17 | 43 => Action::Recon,
        90 => request
            .detail
            .iter()
            .find(|(k, _)| *k == "umas_code")
            .and_then(|(_, v)| u8::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .map_or(Action::Other, |c| umas_action(c).0),
        _ => Action::Other,
    }
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn u8(&mut self) -> Result<u8, ModbusError> {
        let (&b, rest) = self.0.split_first().ok_or(ModbusError::Truncated)?;
        self.0 = rest;
        Ok(b)
    }
    fn u16(&mut self) -> Result<u16, ModbusError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModbusError> {
        let (a, b) = self.0.split_at_checked(n).ok_or(ModbusError::Truncated)?;
        self.0 = b;
        Ok(a)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn bits(bytes: &[u8], count: usize) -> Vec<u32> {
    (0..count.min(bytes.len() * 8))
        .map(|i| u32::from(bytes.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1)))
        .collect()
}

fn registers(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(2)
        .map(|c| {
            u32::from(u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ]))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Device identification object names (MEI 0x0E).
fn device_object(id: u8) -> Option<&'static str> {
    Some(match id {
        0 => "vendor_name",
        1 => "product_code",
        2 => "revision",
        3 => "vendor_url",
        4 => "product_name",
        5 => "model_name",
        6 => "user_application_name",
        _ => return None,
    })
}

/// Parse one ADU (as [`frame_len`] delimited it). `request` says which way it travelled (to the
/// server port). `request_quantity` is the quantity of the matching request, when known: it
/// says how many coil bits of a response are real.
pub fn parse(adu: &[u8], request: bool, request_quantity: Option<u16>) -> Result<Pdu, ModbusError> {
    let mut r = Rd(adu);
    let tid = r.u16()?;
    let _proto = r.u16()?;
    let _len = r.u16()?;
    let unit = r.u8()?;
    let fc = r.u8()?;
    let mut pdu = Pdu {
        tid,
        unit,
        function: fc & 0x7f,
        ..Pdu::default()
    };
    if !request && fc & 0x80 != 0 {
        pdu.exception = Some(r.u8()?);
        return Ok(pdu);
    }
    match (fc, request) {
        (1..=4, true) => {
            pdu.address = Some(r.u16()?);
            pdu.quantity = Some(r.u16()?);
        }
        (1 | 2, false) => {
            let n = usize::from(r.u8()?);
            let data = r.take(n)?;
            let count = request_quantity.map_or(n * 8, usize::from);
            pdu.values = bits(data, count);
        }
        (3 | 4 | 23, false) => {
            let n = usize::from(r.u8()?);
            pdu.values = registers(r.take(n)?);
        }
        (5, _) => {
            pdu.address = Some(r.u16()?);
            pdu.quantity = Some(1);
            let v = r.u16()?;
            pdu.values = vec![u32::from(v == 0xff00)];
        }
        (6, _) => {
            pdu.address = Some(r.u16()?);
            pdu.quantity = Some(1);
            pdu.values = vec![u32::from(r.u16()?)];
        }
        (15, true) => {
            pdu.address = Some(r.u16()?);
            let q = r.u16()?;
            pdu.quantity = Some(q);
            let n = usize::from(r.u8()?);
            pdu.values = bits(r.take(n)?, usize::from(q));
        }
        (16, true) => {
            pdu.address = Some(r.u16()?);
            pdu.quantity = Some(r.u16()?);
            let n = usize::from(r.u8()?);
            pdu.values = registers(r.take(n)?);
        }
        (15 | 16, false) => {
            pdu.address = Some(r.u16()?);
            pdu.quantity = Some(r.u16()?);
        }
        (22, _) => {
            pdu.address = Some(r.u16()?);
            pdu.detail.push(("and_mask", r.u16()?.to_string()));
            pdu.detail.push(("or_mask", r.u16()?.to_string()));
        }
        (23, true) => {
            pdu.address = Some(r.u16()?);
            pdu.quantity = Some(r.u16()?);
            pdu.detail.push(("write_address", r.u16()?.to_string()));
            pdu.detail.push(("write_quantity", r.u16()?.to_string()));
            let n = usize::from(r.u8()?);
            pdu.values = registers(r.take(n)?);
        }
        (24, true) => pdu.address = Some(r.u16()?),
        (24, false) => {
            let _bytes = r.u16()?;
            let count = r.u16()?;
            pdu.quantity = Some(count);
            pdu.values = registers(r.take(usize::from(count) * 2)?);
        }
        (8, _) => {
            let sub = r.u16()?;
            pdu.detail.push(("sub_function_code", sub.to_string()));
            if let Some(name) = diagnostic_name(sub) {
                pdu.detail.push(("sub_function", name.to_string()));
            }
            pdu.detail.push(("data", hex(r.rest())));
        }
        (20 | 21, _) => {
            let n = usize::from(r.u8()?);
            let body = r.take(n)?;
            pdu.detail.push(("file_records", hex(body)));
        }
        (43, _) => {
            let mei = r.u8()?;
            pdu.detail.push(("mei_type", mei.to_string()));
            if mei == 0x0e {
                pdu.detail
                    .push(("mei", "Read Device Identification".to_string()));
                let code = r.u8()?;
                pdu.detail.push(("read_device_id_code", code.to_string()));
                if request {
                    pdu.detail.push(("object_id", r.u8()?.to_string()));
                } else {
                    let _conformity = r.u8()?;
                    let _more = r.u8()?;
                    let _next = r.u8()?;
                    let count = r.u8()?;
                    for _ in 0..count {
                        let id = r.u8()?;
                        let len = usize::from(r.u8()?);
                        let value = String::from_utf8_lossy(r.take(len)?).into_owned();
                        if let Some(name) = device_object(id) {
                            pdu.detail.push((name, value));
                        }
                    }
                }
            } else if mei == 0x0d {
                pdu.detail
                    .push(("mei", "CANopen General Reference".to_string()));
            }
        }
        (17, false) => {
            let n = usize::from(r.u8()?);
            let body = r.take(n)?;
            pdu.detail.push(("server_id", hex(body)));
        }
        (90, _) => {
            // UMAS: session byte, then the UMAS function code.
            let _session = r.u8()?;
            let code = r.u8()?;
            pdu.detail.push(("umas_code", format!("0x{code:02x}")));
            pdu.detail
                .push(("umas_function", umas_action(code).1.to_string()));
        }
        _ => {}
    }
    Ok(pdu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_rejection() {
        assert_eq!(
            frame_len(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1]),
            Ok(Some(12))
        );
        assert_eq!(frame_len(&[0, 1, 0, 0, 0, 6, 1, 3]), Ok(None));
        assert_eq!(
            frame_len(b"GET / HTTP/1.1\r\n"),
            Err(ModbusError::NotModbus)
        );
        assert_eq!(frame_len(&[0, 1, 0, 0, 1, 0]), Err(ModbusError::NotModbus));
    }

    #[test]
    fn write_multiple_registers_and_exception() {
        let req = [0, 7, 0, 0, 0, 11, 1, 16, 0, 1, 0, 2, 4, 0, 170, 0, 187];
        let p = parse(&req, true, None).expect("parses");
        assert_eq!(
            (p.tid, p.unit, p.function, p.address, p.quantity),
            (7, 1, 16, Some(1), Some(2))
        );
        assert_eq!(p.values, vec![170, 187]);
        assert_eq!(action(&p), Action::Write);
        let exc = [0, 7, 0, 0, 0, 3, 1, 0x83, 2];
        let p = parse(&exc, false, None).expect("parses");
        assert_eq!((p.function, p.exception), (3, Some(2)));
        assert_eq!(parse(&req[..10], true, None), Err(ModbusError::Truncated));
    }
}

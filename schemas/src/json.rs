/*!
Compact JSON, byte for byte as `serde_json::to_writer` writes it, with a faster string escaper.

Serialising a Windows event spends most of its time escaping strings: the two thousand-odd bytes
of keys and values and the rendered XML kept in `event.original`. serde_json looks at each byte
of a string in turn; [`write_str`] looks at eight at a time (one 64-bit word: is any byte a quote,
a backslash or a control character?) and copies the runs between escapes whole. Everything
else (numbers, `null`, separators, the order of fields) is written as serde_json writes it,
so the output is the same bytes: the tests compare the two on every sample event, and the
`json_writer` fuzz target on arbitrary strings and maps.

Only what the event types use is fast; floating-point numbers, which they do not use, are
handed to serde_json itself.
*/

use std::fmt;

use serde::ser::{self, Serialize};

/// Append `value`'s compact JSON to `out`.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// Why a value could not be written (a map key that is not a string, number, `bool` or `char`,
/// or a `Serialize` impl's own error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error(msg.to_string())
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The bytes of `w` that are zero have their high bit set in the result. Bits above the lowest
/// set one may be false (a borrow), the lowest is exact.
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// The bytes of `w` that JSON must escape (`"`, `\` and below 0x20) have their high bit set;
/// the lowest set bit is exact, as in [`zero_bytes`].
#[inline(always)]
fn escape_bytes(w: u64) -> u64 {
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    control | zero_bytes(w ^ (LO * u64::from(b'"'))) | zero_bytes(w ^ (LO * u64::from(b'\\')))
}

/// Bytes JSON must escape: `"`, `\` and below 0x20.
static ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where the first byte to escape in `b` is: eight bytes at a time, the last few by table.
#[inline(always)]
fn find_escape(b: &[u8]) -> Option<usize> {
    let mut words = b.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let m = escape_bytes(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|c| ESCAPE[usize::from(*c)])
        .map(|k| at + k)
}

/// Append `s` as a JSON string, escaped as serde_json escapes it: `\"`, `\\`, `\b`, `\t`,
/// `\n`, `\f`, `\r` and `\u00xx` (lower-case hex) for the other control characters; nothing
/// else (not `/`, not DEL, not non-ASCII).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(k) = b.get(start..).and_then(find_escape) {
        let at = start + k;
        out.extend_from_slice(b.get(start..at).unwrap_or_default());
        write_escape(out, b.get(at).copied().unwrap_or_default());
        start = at + 1;
    }
    out.extend_from_slice(b.get(start..).unwrap_or_default());
    out.push(b'"');
}

#[cold]
fn write_escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        b'\t' => b't',
        b'\n' => b'n',
        0x0c => b'f',
        b'\r' => b'r',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

/// The ten integer methods of a `Serializer`, each `body(self, v)`.
macro_rules! integers {
    (|$s:ident: Self, $v:ident| $body:expr) => {
        integers!(@ $s $v $body; serialize_i8 i8, serialize_i16 i16, serialize_i32 i32,
            serialize_i64 i64, serialize_i128 i128, serialize_u8 u8, serialize_u16 u16,
            serialize_u32 u32, serialize_u64 u64, serialize_u128 u128);
    };
    (@ $s:ident $v:ident $body:expr; $($method:ident $ty:ty),*) => {$(
        fn $method(self, $v: $ty) -> Result<(), Error> {
            let $s = self;
            $body
        }
    )*};
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn int<I: itoa::Integer>(&mut self, v: I) {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// What serde_json writes for a value this writer does not write itself.
    fn delegate<T: Serialize>(&mut self, v: T) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v).map_err(|e| Error(e.to_string()))
    }
}

/// Where a sequence or map is: nothing written yet, something written, or closed at once
/// (`len == Some(0)`, as serde_json does).
#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Empty,
    First,
    Rest,
}

/// An open array or object; `close` is what ends it (`]`, `}`, or `]}`/`}}` for an enum
/// variant's).
struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    state: State,
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn sep(&mut self) {
        if self.state == State::First {
            self.state = State::Rest;
        } else {
            self.w.out.push(b',');
        }
    }

    fn end(self) {
        if self.state != State::Empty {
            self.w.out.extend_from_slice(self.close);
        } else if self.close.len() > 1 {
            // An empty variant's array or map is closed; its wrapping object is not.
            self.w.out.push(b'}');
        }
    }
}

impl<'w, 'a> Writer<'a> {
    fn open(&'w mut self, open: u8, close: &'static [u8], len: Option<usize>) -> Compound<'w, 'a> {
        self.out.push(open);
        let state = if len == Some(0) {
            self.out.push(close[0]);
            State::Empty
        } else {
            State::First
        };
        Compound {
            w: self,
            state,
            close,
        }
    }

    fn variant_key(&mut self, variant: &str) {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(|w: Self, v| {
        w.int(v);
        Ok(())
    });
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.delegate(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.delegate(v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        // An array of numbers, as serde_json writes bytes.
        let mut seq = self.open(b'[', b"]", Some(v.len()));
        for b in v {
            seq.sep();
            seq.w.int(*b);
        }
        seq.end();
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant_key(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(self.open(b'[', b"]", len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.variant_key(variant);
        Ok(self.open(b'[', b"]}", Some(len)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(self.open(b'{', b"}", len))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.variant_key(variant);
        Ok(self.open(b'{', b"}}", Some(len)))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.sep();
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

/// Tuples, tuple structs and tuple variants are written as sequences (the variant's wrapping
/// object is closed by `Compound::end`).
macro_rules! as_sequence {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> Result<(), Error> {
                Compound::end(self);
                Ok(())
            }
        }
    )*};
}

as_sequence!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.sep();
        key.serialize(Key { w: &mut *self.w })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.sep();
        write_str(self.w.out, key);
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

/// A map key: a string as it is; a number, `bool` or `char` as a string, a `Some` or newtype as
/// what it holds, as serde_json writes keys. Anything else is an error, as it is in serde_json.
struct Key<'w, 'a> {
    w: &'w mut Writer<'a>,
}

impl Key<'_, '_> {
    fn quoted(self, text: &str) -> Result<(), Error> {
        self.w.out.push(b'"');
        self.w.out.extend_from_slice(text.as_bytes());
        self.w.out.push(b'"');
        Ok(())
    }

    fn int<I: itoa::Integer>(self, v: I) -> Result<(), Error> {
        self.quoted(itoa::Buffer::new().format(v))
    }

    /// As serde_json writes a float key: the number in quotes, if finite.
    fn float<F: Serialize>(self, v: F, finite: bool) -> Result<(), Error> {
        if !finite {
            return Err(Error("float key must be finite".to_owned()));
        }
        self.w.out.push(b'"');
        self.w.delegate(v)?;
        self.w.out.push(b'"');
        Ok(())
    }

    fn not_a_string<T>(self) -> Result<T, Error> {
        Err(Error("key must be a string".to_owned()))
    }
}

impl<'w, 'a> ser::Serializer for Key<'w, 'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.w.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.w.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { "true" } else { "false" })
    }
    integers!(|k: Self, v| k.int(v));
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(v, v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v, v.is_finite())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.w.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        self.not_a_string()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.not_a_string()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.not_a_string()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.not_a_string()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        self.not_a_string()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        self.not_a_string()
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        self.not_a_string()
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        self.not_a_string()
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        self.not_a_string()
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        self.not_a_string()
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        self.not_a_string()
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        self.not_a_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use serde::ser::{SerializeMap, Serializer};
    use serde::Serialize;

    use super::*;

    /// Ours and serde_json's, the same bytes (or both an error).
    fn same<T: Serialize + ?Sized>(value: &T) {
        let mut ours = Vec::new();
        let ours = to_writer(&mut ours, value).map(|()| ours);
        let theirs = serde_json::to_vec(value);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b)),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("ours {a:?}, serde_json {b:?}"),
        }
    }

    #[test]
    fn every_byte_and_every_place_of_an_escape_as_serde_json_writes_it() {
        for c in 0..=0x7fu8 {
            let one = String::from(char::from(c));
            same(&one);
            // The byte at every place of strings around the word size, in clean text.
            for len in 0..=20 {
                for at in 0..=len {
                    let mut s = "a".repeat(len);
                    s.insert(at, char::from(c));
                    same(&s);
                }
            }
        }
        for s in [
            "",
            "é",
            "naïve \u{1F600} emoji, \u{7f} DEL, \u{2028} line separator",
            "\"\"\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\\n\n\n\n\n\n\n\n\n",
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><Data Name=\"a\">x</Data></Event>",
        ] {
            same(s);
        }
    }

    #[test]
    fn random_strings_as_serde_json_writes_them() {
        // xorshift: no dependency, the same strings every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet: Vec<char> = "ab\"\\\n\t\r\u{0}\u{1f} é€\u{1F600}/<>&'".chars().collect();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 70) as usize;
            let mut y = x;
            let s: String = (0..len)
                .map(|_| {
                    y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // Mostly plain letters, as real text is.
                    let k = (y >> 33) as usize % (alphabet.len() * 4);
                    alphabet.get(k).copied().unwrap_or('x')
                })
                .collect();
            same(&s);
        }
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Tuple(i32, &'static str);

    #[derive(Serialize)]
    struct Nothing {}

    #[derive(Serialize)]
    enum E {
        Unit,
        Newtype(Option<u32>),
        Tuple(u8, u8),
        NoTuple(),
        Struct { a: bool, b: Vec<u8> },
        NoStruct {},
    }

    #[derive(Serialize)]
    struct All {
        b: bool,
        i: (i8, i16, i32, i64, i128),
        u: (u8, u16, u32, u64, u128),
        f: (f32, f64, f64, f64),
        c: char,
        s: String,
        none: Option<String>,
        some: Option<&'static str>,
        unit: (),
        unit_struct: Unit,
        newtype: Newtype,
        tuple: Tuple,
        nothing: Nothing,
        variants: Vec<E>,
        empty: Vec<String>,
        map: BTreeMap<String, Vec<Option<bool>>>,
        int_keys: BTreeMap<i64, u8>,
        char_keys: BTreeMap<char, u8>,
        bool_keys: BTreeMap<bool, u8>,
        no_map: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
    }

    #[test]
    fn the_whole_data_model_as_serde_json_writes_it() {
        let all = All {
            b: true,
            i: (i8::MIN, -300, i32::MIN, i64::MIN, i128::MIN),
            u: (u8::MAX, 65535, u32::MAX, u64::MAX, u128::MAX),
            f: (1.5, -0.0, f64::NAN, 1e300),
            c: '"',
            s: "tab\there".into(),
            none: None,
            some: Some("x"),
            unit: (),
            unit_struct: Unit,
            newtype: Newtype(7),
            tuple: Tuple(-1, "\\"),
            nothing: Nothing {},
            variants: vec![
                E::Unit,
                E::Newtype(None),
                E::Newtype(Some(4)),
                E::Tuple(1, 2),
                E::NoTuple(),
                E::Struct {
                    a: false,
                    b: vec![0, 255],
                },
                E::NoStruct {},
            ],
            empty: vec![],
            map: [("k\"ey".to_owned(), vec![None, Some(true)])].into(),
            int_keys: [(-5, 1), (10, 2)].into(),
            char_keys: [('\n', 1)].into(),
            bool_keys: [(false, 1), (true, 2)].into(),
            no_map: BTreeMap::new(),
            skipped: None,
        };
        same(&all);
    }

    /// Bytes, float keys and keys that are not strings: as serde_json writes (or refuses) them.
    #[test]
    fn bytes_float_keys_and_bad_keys_as_serde_json_treats_them() {
        struct Bytes(&'static [u8]);
        impl Serialize for Bytes {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        same(&Bytes(b""));
        same(&Bytes(b"\x00\x7f\xff"));

        struct Keyed<K>(K);
        impl<K: Serialize> Serialize for Keyed<K> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry(&self.0, &1)?;
                m.end()
            }
        }
        same(&Keyed(2.5f64));
        same(&Keyed(-0.25f32));
        same(&Keyed(f64::INFINITY));
        same(&Keyed(()));
        same(&Keyed(Some(1)));
        same(&Keyed(None::<u8>));
        same(&Keyed(vec![1]));
        same(&Keyed(Newtype(3)));
        same(&Keyed(E::Unit));
        same(&Keyed(E::Tuple(1, 2)));
    }
}

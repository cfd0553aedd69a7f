//! The protobuf wire format: varints, fixed-width values and length-delimited fields, read
//! from a borrowed byte slice. Every length is checked against the bytes that remain before
//! anything is sliced, so a declared size never allocates: the decoded messages borrow their
//! bytes or grow one element per element actually present.

use crate::{OnnxError, Result};

/// Varint (int32, int64, enum, bool).
pub const VARINT: u8 = 0;
/// 64-bit little-endian (double, fixed64).
pub const FIXED64: u8 = 1;
/// Length-delimited (string, bytes, messages, packed repeated scalars).
pub const LEN: u8 = 2;
/// 32-bit little-endian (float, fixed32).
pub const FIXED32: u8 = 5;

/// A cursor over the bytes of one message; positions are absolute offsets into the file, for
/// messages.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

/// One field's key: its number and wire type.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The field number.
    pub field: u32,
    /// The wire type.
    pub wire: u8,
    /// Where the key starts, for messages.
    pub at: usize,
}

/// The error for malformed bytes at offset `at`.
pub fn malformed(at: usize, what: impl std::fmt::Display) -> OnnxError {
    OnnxError::Malformed(format!("{what} (at byte {at})"))
}

impl<'a> Reader<'a> {
    /// A reader over all of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            end: bytes.len(),
        }
    }

    /// True when every byte of the message has been read.
    pub fn done(&self) -> bool {
        self.pos >= self.end
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        if self.pos >= self.end {
            return Err(malformed(self.pos, format!("truncated {what}")));
        }
        let b = self.bytes[self.pos];
        self.pos += 1;
        Ok(b)
    }

    /// A varint of at most ten bytes.
    pub fn varint(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte("varint")?;
            if i == 9 && b > 1 {
                return Err(malformed(start, "varint longer than 64 bits"));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed(start, "varint longer than ten bytes"))
    }

    /// The next field's key, or `None` at the end of the message.
    pub fn key(&mut self) -> Result<Option<Key>> {
        if self.done() {
            return Ok(None);
        }
        let at = self.pos;
        let raw = self.varint()?;
        let wire = (raw & 7) as u8;
        let field = raw >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(malformed(at, format!("invalid field number {field}")));
        }
        Ok(Some(Key {
            field: field as u32,
            wire,
            at,
        }))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let start = self.pos;
        let left = self.end - self.pos;
        if n > left {
            return Err(malformed(
                start,
                format!("truncated {what}: {n} bytes declared, {left} left"),
            ));
        }
        self.pos += n;
        Ok(&self.bytes[start..self.pos])
    }

    /// Four little-endian bytes.
    pub fn fixed32(&mut self) -> Result<u32> {
        let b = self.take(4, "32-bit value")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Eight little-endian bytes.
    pub fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8, "64-bit value")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited field's bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| malformed(at, "length does not fit"))?;
        self.take(len, "length-delimited field")
    }

    /// A length-delimited field as a reader over its bytes (absolute offsets kept).
    pub fn message(&mut self) -> Result<Reader<'a>> {
        let body = self.bytes()?;
        let start = self.pos - body.len();
        Ok(Reader {
            bytes: self.bytes,
            pos: start,
            end: self.pos,
        })
    }

    /// Skips a field of wire type `key.wire` (groups are refused).
    pub fn skip(&mut self, key: Key) -> Result<()> {
        match key.wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.fixed32().map(drop),
            w => Err(malformed(
                key.at,
                format!("field {} has unsupported wire type {w}", key.field),
            )),
        }
    }
}

/// Checks that field `key` of message `msg` has wire type `want`.
pub fn expect(key: Key, want: u8, msg: &str) -> Result<()> {
    if key.wire == want {
        Ok(())
    } else {
        Err(malformed(
            key.at,
            format!(
                "{msg} field {} has wire type {}, expected {want}",
                key.field, key.wire
            ),
        ))
    }
}

/// A string field (UTF-8; invalid bytes replaced).
pub fn string(r: &mut Reader, key: Key, msg: &str) -> Result<String> {
    expect(key, LEN, msg)?;
    Ok(String::from_utf8_lossy(r.bytes()?).into_owned())
}

/// A varint field as a signed 64-bit value (two's complement, as int64 and int32 encode).
pub fn int64(r: &mut Reader, key: Key, msg: &str) -> Result<i64> {
    expect(key, VARINT, msg)?;
    Ok(r.varint()? as i64)
}

/// A varint field as an int32 or enum (a value outside i32 is malformed).
pub fn int32(r: &mut Reader, key: Key, msg: &str) -> Result<i32> {
    let at = key.at;
    let v = int64(r, key, msg)?;
    i32::try_from(v).map_err(|_| malformed(at, format!("{msg} field {} out of range", key.field)))
}

/// Appends a repeated varint field's values (packed or not) to `out`.
pub fn repeated_varint(r: &mut Reader, key: Key, msg: &str, out: &mut Vec<i64>) -> Result<()> {
    match key.wire {
        VARINT => out.push(r.varint()? as i64),
        LEN => {
            let mut packed = r.message()?;
            while !packed.done() {
                out.push(packed.varint()? as i64);
            }
        }
        _ => expect(key, VARINT, msg)?,
    }
    Ok(())
}

/// Appends a repeated 32-bit field's values (packed or not) to `out`.
pub fn repeated_fixed32(r: &mut Reader, key: Key, msg: &str, out: &mut Vec<u32>) -> Result<()> {
    match key.wire {
        FIXED32 => out.push(r.fixed32()?),
        LEN => {
            let mut packed = r.message()?;
            while !packed.done() {
                out.push(packed.fixed32()?);
            }
        }
        _ => expect(key, FIXED32, msg)?,
    }
    Ok(())
}

/// Appends a repeated 64-bit field's values (packed or not) to `out`.
pub fn repeated_fixed64(r: &mut Reader, key: Key, msg: &str, out: &mut Vec<u64>) -> Result<()> {
    match key.wire {
        FIXED64 => out.push(r.fixed64()?),
        LEN => {
            let mut packed = r.message()?;
            while !packed.done() {
                out.push(packed.fixed64()?);
            }
        }
        _ => expect(key, FIXED64, msg)?,
    }
    Ok(())
}

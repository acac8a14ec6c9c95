//! A cursor over fuzz input bytes. Reads past the end give zeros / empty values, so every
//! input decodes to something and short inputs stay meaningful.

/// The byte that ends a text field (it never occurs in UTF-8 text, so seed files can hold
/// readable text between separators).
pub const SEP: u8 = 0xff;

#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_be_bytes(b)
    }

    /// The bytes up to the next [`SEP`] (consumed) or the end.
    pub fn raw_field(&mut self) -> &'a [u8] {
        match self.data.iter().position(|&b| b == SEP) {
            Some(i) => {
                let (f, rest) = self.data.split_at(i);
                self.data = &rest[1..];
                f
            }
            None => std::mem::take(&mut self.data),
        }
    }

    /// [`Input::raw_field`] as text (invalid UTF-8 replaced: valid UTF-8 passes unchanged).
    pub fn field(&mut self) -> String {
        String::from_utf8_lossy(self.raw_field()).into_owned()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

//! A borrowed, lazily walked view of bencode that [`span`](super::span) has already checked.
//!
//! serde_bencode's typed decoding refuses a whole torrent when one optional field has another
//! type than expected, and its `Value` forgets the order of dictionary keys, which the BEP 52
//! file tree needs (keys must be sorted, and files come in key order). This view allocates
//! nothing: every lookup walks the bytes, which a checked buffer makes safe and a torrent's
//! small dictionaries make cheap.

use super::span::{self, SpanError};

/// One bencoded value, exactly its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    raw: &'a [u8],
}

impl<'a> Value<'a> {
    /// The top-level value of `data`, after checking its whole structure.
    pub fn parse(data: &'a [u8]) -> Result<Self, SpanError> {
        let end = span::value_end(data)?;
        Ok(Value { raw: &data[..end] })
    }

    /// The exact bytes of this value (the info-hash is taken over them).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn int(&self) -> Option<i64> {
        let digits = self.raw.strip_prefix(b"i")?.strip_suffix(b"e")?;
        span::integer(digits)
    }

    pub fn bytes(&self) -> Option<&'a [u8]> {
        if !self.raw.first()?.is_ascii_digit() {
            return None;
        }
        span::string_span(self.raw, 0).ok().map(|r| &self.raw[r])
    }

    /// The items of a list, or `None` if this is not one.
    pub fn list(&self) -> Option<Items<'a>> {
        (self.raw.first() == Some(&b'l')).then_some(Items {
            raw: self.raw,
            pos: 1,
            dict: false,
        })
    }

    /// The (key, value) entries of a dictionary in file order, or `None` if this is not one.
    pub fn dict(&self) -> Option<Entries<'a>> {
        (self.raw.first() == Some(&b'd')).then_some(Entries(Items {
            raw: self.raw,
            pos: 1,
            dict: true,
        }))
    }

    /// The value under `key` if this is a dictionary holding it (the first one, if repeated).
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.dict()?
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }
}

/// Walks the items of a checked list or dictionary.
pub struct Items<'a> {
    raw: &'a [u8],
    pos: usize,
    dict: bool,
}

impl<'a> Items<'a> {
    /// The next (key, value); the key is empty for a list. A checked buffer never fails here;
    /// should it, the walk just ends.
    fn step(&mut self) -> Option<(&'a [u8], Value<'a>)> {
        if self.raw.get(self.pos).is_none_or(|&b| b == b'e') {
            return None;
        }
        let mut key: &[u8] = &[];
        if self.dict {
            let k = span::string_span(self.raw, self.pos).ok()?;
            key = &self.raw[k.clone()];
            self.pos = k.end;
        }
        let end = span::skip_value(self.raw, self.pos, 1).ok()?;
        let v = Value {
            raw: &self.raw[self.pos..end],
        };
        self.pos = end;
        Some((key, v))
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        self.step().map(|(_, v)| v)
    }
}

/// Walks the entries of a checked dictionary.
pub struct Entries<'a>(Items<'a>);

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.step()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_lists_dicts_and_scalars() {
        let v = Value::parse(b"d1:ai-3e1:bl3:xyzi0ee1:cdee").unwrap();
        assert_eq!(v.get("a").and_then(|x| x.int()), Some(-3));
        let b: Vec<_> = v.get("b").unwrap().list().unwrap().collect();
        assert_eq!(b[0].bytes(), Some(&b"xyz"[..]));
        assert_eq!(b[1].int(), Some(0));
        assert_eq!(b[0].int(), None);
        assert_eq!(v.get("c").unwrap().dict().unwrap().count(), 0);
        assert!(v.get("z").is_none());
        assert!(v.list().is_none());
        let keys: Vec<_> = v.dict().unwrap().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
        assert!(Value::parse(b"d1:a").is_err());
    }
}

//! Reading dbt Cloud's answers: the envelope decoded while it streams in, `data` as the caller's
//! type and the rest skipped, long strings cut ([`crate::long_strings`]), never more than a
//! ceiling read; and the detail of an error answer.

use std::io::{self, Read};

use reqwest::blocking::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::bounded::Bounded;
use crate::long_strings::CutLongStrings;

/// At most `limit` bytes of an answer that only adds detail to a message.
pub fn read_limited(response: Response, limit: u64) -> Vec<u8> {
    let mut body = Vec::new();
    // An unreadable body still leaves the status.
    let _ = response.take(limit).read_to_end(&mut body);
    body
}

/// An answer's envelope: its `data`, and how many lone surrogate escapes in it were read as
/// U+FFFD ([`crate::long_strings`]).
pub struct Envelope<T> {
    pub data: T,
    pub lone_surrogates: u64,
}

/// dbt Cloud's answer, in its envelope, holding a `data` unlike its API's: dbt Cloud's fault, told
/// to the user (exit 1), and told apart from a refusal by those who may go on without the answer
/// (the baseline read before a trigger).
#[derive(Debug)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreadable {}

/// Why an answer could not be read.
pub enum Undecodable {
    /// Past the ceiling on an answer's size.
    TooLarge,
    /// The connection broke while the answer came.
    Broken(String),
    /// Not JSON, or not dbt Cloud's envelope (an object with `data`); its first bytes.
    NotTheApi { head: Vec<u8> },
    /// dbt Cloud's envelope, but a `data` unlike the API's: serde names the field.
    Data(serde_json::Error),
}

/// Reads `body` as dbt Cloud's envelope while it streams in: `data` decoded as `T`, the rest
/// skipped, never more than `limit` bytes read.
pub fn decode_envelope<T: DeserializeOwned>(
    body: impl Read,
    limit: u64,
) -> Result<Envelope<T>, Undecodable> {
    let mut capped = Capped {
        inner: body,
        read: 0,
        limit,
        head: Vec::new(),
    };
    let in_data = std::cell::Cell::new(false);
    let decoded = {
        let mut cut = CutLongStrings::new(&mut capped);
        let mut deserializer = serde_json::Deserializer::from_reader(io::BufReader::new(&mut cut));
        let data = serde::de::DeserializeSeed::deserialize(
            EnvelopeSeed::<T> {
                in_data: &in_data,
                data: std::marker::PhantomData,
            },
            &mut deserializer,
        )
        .and_then(|data| deserializer.end().map(|()| data));
        drop(deserializer);
        data.map(|data| Envelope {
            data,
            lone_surrogates: cut.lone_surrogates(),
        })
    };
    decoded.map_err(|error| {
        if capped.read > capped.limit {
            Undecodable::TooLarge
        } else if error.classify() == serde_json::error::Category::Io {
            Undecodable::Broken(error.to_string())
        } else if in_data.get() && error.classify() == serde_json::error::Category::Data {
            Undecodable::Data(error)
        } else {
            Undecodable::NotTheApi { head: capped.head }
        }
    })
}

/// A reader that fails once more than `limit` bytes came, and keeps the first few for messages.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
    head: Vec<u8>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        const HEAD: usize = 80;
        let read = self.inner.read(buf)?;
        if self.head.len() < HEAD {
            let take = read.min(HEAD - self.head.len());
            self.head.extend_from_slice(&buf[..take]);
        }
        self.read += read as u64;
        if self.read > self.limit {
            return Err(io::Error::other("the answer is larger than the ceiling"));
        }
        Ok(read)
    }
}

/// Decodes the envelope, noting when `data` is being read: an error there is a `data` unlike the
/// API's, an error elsewhere means the answer is not the API's at all.
struct EnvelopeSeed<'a, T> {
    in_data: &'a std::cell::Cell<bool>,
    data: std::marker::PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> serde::de::DeserializeSeed<'de> for EnvelopeSeed<'_, T> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for EnvelopeSeed<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("dbt Cloud's answer: an object with data")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "data" if data.is_none() => {
                    self.in_data.set(true);
                    data = Some(map.next_value::<T>()?);
                    self.in_data.set(false);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        data.ok_or_else(|| serde::de::Error::missing_field("data"))
    }
}

/// A list of dbt Cloud's (`data: null` is an empty one) whose items are read one by one: an item
/// that cannot be read as `T` is left out and said in `unread`, rather than failing the list.
pub struct Listed<T> {
    pub items: Vec<T>,
    /// Why each item left out could not be read.
    pub unread: Vec<String>,
}

/// The most one item of a [`Listed`] may take while it is read.
const ITEM_BUDGET: usize = 256 * 1024;

impl<'de, T: DeserializeOwned> Deserialize<'de> for Listed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Listed<T>, D::Error> {
        struct Items<T>(std::marker::PhantomData<T>);
        impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for Items<T> {
            type Value = Listed<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_unit<E>(self) -> Result<Listed<T>, E> {
                Ok(Listed {
                    items: Vec::new(),
                    unread: Vec::new(),
                })
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Listed<T>, E> {
                self.visit_unit()
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Listed<T>, A::Error> {
                let (mut items, mut unread) = (Vec::new(), Vec::new());
                loop {
                    let left = std::cell::Cell::new(ITEM_BUDGET);
                    let Some(item) = seq.next_element_seed(Bounded { left: &left })? else {
                        return Ok(Listed { items, unread });
                    };
                    match T::deserialize(&item) {
                        Ok(item) => items.push(item),
                        Err(error) => unread.push(error.to_string()),
                    }
                }
            }
        }
        deserializer.deserialize_any(Items(std::marker::PhantomData))
    }
}

/// The pure decoding step, for the property tests in `no_panic_tests.rs`.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// `Some` when the answer decodes as `T`.
    pub fn decode_answer<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
        decode_envelope::<T>(body, 1 << 20)
            .ok()
            .map(|answer| answer.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// An answer without a length that streams past the ceiling is refused once it passes it.
    #[test]
    fn an_answer_past_the_ceiling_is_refused_as_it_streams() {
        let padding = "0,".repeat(5_000);
        let body = format!("{{\"data\": {{\"padding\": [{padding}0], \"id\": 1}}}}");
        let decoded = decode_envelope::<Value>(body.as_bytes(), 1_000);
        assert!(matches!(decoded, Err(Undecodable::TooLarge)));
        let decoded = decode_envelope::<Value>(body.as_bytes(), 1 << 20);
        assert_eq!(
            decoded.map(|answer| answer.data["id"].clone()).ok(),
            Some(Value::from(1))
        );
    }
}

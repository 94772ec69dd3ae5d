//! The requests the host sends a custom handler: the invocation envelope for each trigger, the host's headers, and
//! a chunked body; and the JSON re-serialization the host applies to what it passes on.
//!
//! The host parses a trigger's payload into its own JSON objects and writes them out again, so the handler sees
//! the event with its keys in the same order but with escapes and numbers normalized — never the exact text Event
//! Grid sent. [`normalized`] does the same here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

/// The host's version, as it announces itself.
pub const HOST_VERSION: &str = "4.1041.200.25064";

/// An invocation request as the host sends it: its headers, and the body streamed in several chunks, without
/// Content-Length (Transfer-Encoding: chunked).
pub fn host_request(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    host_request_with_id(client, url, body, &uuid_like())
}

/// [`host_request`] with a given invocation id.
pub fn host_request_with_id(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    invocation_id: &str,
) -> reqwest::RequestBuilder {
    let third = body.len().div_ceil(3).max(1);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(third).map(|c| Ok(c.to_vec())).collect();
    client
        .post(url)
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
        .header("traceparent", format!("00-{}-{}-01", hex(16), hex(8)))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
}

/// The `sys` entry of every invocation's metadata.
pub fn sys(function: &str) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": "2026-11-28T12:00:00.0000000Z",
        "RandGuid": uuid_like(),
    })
}

/// The body the host posts for one Event Grid trigger invocation. `event_text` is the event as Event Grid sent it;
/// the host re-serializes it, and its `Metadata.data` is the event's `data` — an object as it is, any other value
/// as its JSON text, absent when the event has none.
pub fn event_grid(function: &str, binding: &str, event_text: &str) -> Vec<u8> {
    let event = normalized(event_text);
    let mut metadata = Map::new();
    if let Some(data) = serde_json::from_str::<Value>(&event)
        .ok()
        .and_then(|e| e.get("data").cloned())
    {
        let data = match data {
            Value::Object(_) => data,
            other => Value::String(other.to_string()),
        };
        metadata.insert("data".to_owned(), data);
    }
    metadata.insert("sys".to_owned(), sys(function));
    format!(
        r#"{{"Data":{{{}:{event}}},"Metadata":{}}}"#,
        Value::String(binding.to_owned()),
        Value::Object(metadata)
    )
    .into_bytes()
}

/// The body the host posts for one queue trigger invocation: the message's text JSON-encoded as a string in
/// `Data`, and the message's properties in `Metadata` (`DequeueCount` as a string, `Id` and `PopReceipt` as JSON
/// texts of strings), and — when the message is a JSON object — its top-level properties that are not arrays.
pub fn queue(function: &str, binding: &str, message: &QueueMessage) -> Vec<u8> {
    let mut metadata = Map::new();
    metadata.insert("DequeueCount".to_owned(), json!(message.dequeue_count.to_string()));
    metadata.insert("Id".to_owned(), json!(Value::String(message.id.clone()).to_string()));
    metadata.insert("PopReceipt".to_owned(), json!(Value::String(uuid_like()).to_string()));
    metadata.insert("InsertionTime".to_owned(), json!(message.insertion_time));
    metadata.insert("ExpirationTime".to_owned(), json!("2026-12-05T12:00:00+00:00"));
    metadata.insert("NextVisibleTime".to_owned(), json!("2026-11-28T12:10:00+00:00"));
    // The message's own top-level properties join the binding data, overwriting the host's of the same name.
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&message.text) {
        for (name, value) in fields {
            if !value.is_array() {
                metadata.insert(name, value);
            }
        }
    }
    metadata.insert("sys".to_owned(), sys(function));
    json!({
        "Data": { binding: Value::String(message.text.clone()).to_string() },
        "Metadata": metadata,
    })
    .to_string()
    .into_bytes()
}

/// The body the host posts for one timer trigger invocation: the timer's `TimerInfo` in `Data` — its schedule,
/// its schedule status (`null` unless the timer's schedule is monitored) and whether the tick is past due — and
/// the same object, with `sys`, in `Metadata`.
pub fn timer(function: &str, binding: &str, past_due: bool) -> Vec<u8> {
    let info = json!({
        "Schedule": { "AdjustForDST": true },
        "ScheduleStatus": {
            "Last": "2026-11-28T11:50:00+00:00",
            "Next": "2026-11-28T12:10:00+00:00",
            "LastUpdated": "2026-11-28T12:00:00+00:00",
        },
        "IsPastDue": past_due,
    });
    json!({
        "Data": { binding: info },
        "Metadata": { binding: info, "sys": sys(function) },
    })
    .to_string()
    .into_bytes()
}

/// A queue message as the host hands it to a function.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage {
    pub id: String,
    pub text: String,
    pub dequeue_count: u32,
    pub insertion_time: String,
}

/// A JSON text as the host writes it back after parsing it: keys in their order (a repeated key keeps its first
/// place and its last value), strings with only the escapes JSON requires, numbers in their shortest form. Text
/// that is not JSON is returned as it is.
pub fn normalized(text: &str) -> String {
    match serde_json::from_str::<Ordered>(text) {
        Ok(value) => serde_json::to_string(&value).unwrap(),
        Err(_) => text.to_owned(),
    }
}

/// A JSON value that keeps its keys in order (`serde_json::Value` sorts them), as Json.NET's `JObject` does.
pub enum Ordered {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    /// `None` when the text is not JSON.
    pub fn parse(text: &str) -> Option<Ordered> {
        serde_json::from_str(text).ok()
    }

    /// A property by name as Json.NET binds a class's properties: in any case, the last one written winning.
    pub fn get_ci(&self, name: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(entries) => entries
                .iter()
                .rev()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// A dictionary entry by its exact key.
    pub fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Ordered::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Ordered::Null)
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap()
    }

    /// JSON indented by two spaces, as Json.NET's `JToken.ToString()` writes it (with `\n` line ends, as on Linux).
    pub fn to_indented(&self) -> String {
        serde_json::to_string_pretty(self).unwrap()
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Ordered, E> {
                serde_json::Number::from_f64(v)
                    .map(Ordered::Number)
                    .ok_or_else(|| E::custom("a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries: Vec<(String, Ordered)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Ordered>()? {
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = value,
                        None => entries.push((key, value)),
                    }
                }
                Ok(Ordered::Object(entries))
            }
        }
        deserializer.deserialize_any(OrderedVisitor)
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Null => serializer.serialize_unit(),
            Ordered::Bool(b) => serializer.serialize_bool(*b),
            Ordered::Number(n) => n.serialize(serializer),
            Ordered::String(s) => serializer.serialize_str(s),
            Ordered::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Ordered::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// Distinct hex digits for ids and trace contexts.
pub fn hex(bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) | (u128::from(std::process::id()) << 64);
    let digits = format!("{n:032x}");
    digits[32 - bytes * 2..].to_owned()
}

/// A fresh GUID-shaped id.
pub fn uuid_like() -> String {
    let h = hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

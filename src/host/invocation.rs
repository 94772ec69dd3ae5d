//! The Functions host's side of a call: the invocation request it posts and the reply it reads back.
//!
//! The host posts `{"Data": {BINDING: VALUE, …}, "Metadata": {…}}` — one `Data` entry per input binding, keyed by
//! the binding's name in `function.json` — and reads back `{"Outputs": {BINDING: VALUE, …}, "Logs": […],
//! "ReturnValue": null}`. Nothing here knows what a function does with its inputs.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why an invocation body holds no value for the binding asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    #[error("the invocation body is not a JSON object with a Data object: {0}")]
    NotAnInvocation(String),
    #[error("the invocation's Data has no {0} binding")]
    NoBinding(&'static str),
    #[error("the {0} binding is neither a JSON object nor a string holding one")]
    NotAnObject(&'static str),
}

#[derive(Deserialize)]
struct Invocation<'a> {
    #[serde(rename = "Data", borrow)]
    data: std::collections::HashMap<Cow<'a, str>, Option<&'a RawValue>>,
}

/// The JSON text of the object bound to `binding`, exactly as the host sent it, without parsing the object itself.
/// The host passes an object through, but turns other values into a JSON string holding the JSON (see
/// [`unwrap_object`]).
pub fn binding_object<'a>(body: &'a [u8], binding: &'static str) -> Result<Cow<'a, str>, InvocationError> {
    let value = binding_value(body, binding)?;
    unwrap_object(value).ok_or(InvocationError::NotAnObject(binding))
}

/// The raw JSON value bound to `binding`; a JSON `null` counts as absent.
pub fn binding_value<'a>(body: &'a [u8], binding: &'static str) -> Result<&'a RawValue, InvocationError> {
    let invocation: Invocation<'_> =
        serde_json::from_slice(body).map_err(|e| InvocationError::NotAnInvocation(e.to_string()))?;
    invocation
        .data
        .get(binding)
        .copied()
        .flatten()
        .ok_or(InvocationError::NoBinding(binding))
}

/// Deserializes the object bound to `binding` straight out of the body, in the one pass over it that reading the
/// envelope takes. `None` when the body is not an invocation with that binding, or the value does not deserialize
/// as `T` (a JSON string holding the object, say); [`binding_object`] then gives the text to look at.
pub fn parse_binding<T: DeserializeOwned>(body: &[u8], binding: &str) -> Option<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let envelope = Entry {
        key: "Data",
        seed: Entry {
            key: binding,
            seed: PhantomData::<T>,
        },
    };
    let found = envelope.deserialize(&mut deserializer).ok()?.flatten();
    deserializer.end().ok()?;
    found
}

/// A map key, borrowed from the body unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// In a JSON object, the value of `key` read with `seed`, every other entry skipped; the last of a repeated key
/// counts, and `None` means the key is absent. The envelope is one (`Data`) around another (the binding).
#[derive(Clone)]
struct Entry<'k, S> {
    key: &'k str,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de> + Clone> DeserializeSeed<'de> for Entry<'_, S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Clone> Visitor<'de> for Entry<'_, S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object that may hold {:?}", self.key)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == self.key {
                found = Some(map.next_value_seed(self.seed.clone())?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// What to keep of a body that holds no usable input: its `Data`, without the host's per-delivery `Metadata`
/// (a fresh `RandGuid` and `UtcNow` each time), so that a redelivery lands on the same quarantine entry; or the whole
/// body when it has no `Data`.
pub fn quarantine_payload(body: &[u8]) -> &[u8] {
    #[derive(Deserialize)]
    struct DataOnly<'a> {
        #[serde(rename = "Data", borrow)]
        data: &'a RawValue,
    }
    match serde_json::from_slice::<DataOnly<'_>>(body) {
        Ok(invocation) => invocation.data.get().as_bytes(),
        Err(_) => body,
    }
}

/// An object's text, given as the object itself or as a JSON string holding it — the host and dead-letter tools
/// both do the latter — `None` for anything else.
pub fn unwrap_object(value: &RawValue) -> Option<Cow<'_, str>> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'{') => Some(Cow::Borrowed(text)),
        Some(b'"') => {
            let inner: String = serde_json::from_str(text).ok()?;
            inner.trim_start().starts_with('{').then_some(Cow::Owned(inner))
        }
        _ => None,
    }
}

/// The reply the host expects from a custom handler. `Logs` lines appear in the function's invocation log (only on
/// a 2xx reply: the host reads no body of a failed one); `Outputs` are written to the output bindings of the same
/// names, after a 2xx reply only.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct InvocationReply {
    #[serde(rename = "Outputs")]
    pub outputs: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Option<serde_json::Value>,
}

impl InvocationReply {
    pub fn with_log(line: impl Into<String>) -> Self {
        Self {
            outputs: serde_json::Map::new(),
            logs: vec![line.into()],
            return_value: None,
        }
    }

    /// Adds a value for the output binding `name`.
    pub fn with_output(mut self, name: &str, value: serde_json::Value) -> Self {
        self.outputs.insert(name.to_owned(), value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"id":"e1","eventType":"T","data":{"a":1}}"#;
    const BINDING: &str = "eventGridEvent";

    fn body(event: &str) -> String {
        format!(
            r#"{{"Data":{{"eventGridEvent":{event}}},"Metadata":{{"data":{{"a":1}},"sys":{{"MethodName":"RecordingEvent","UtcNow":"2026-01-01T00:00:00Z","RandGuid":"x"}}}}}}"#
        )
    }

    #[test]
    fn bound_object_is_returned_verbatim() {
        let body = body(EVENT);
        assert_eq!(binding_object(body.as_bytes(), BINDING).unwrap(), EVENT);
    }

    #[test]
    fn object_given_as_a_string_is_unwrapped() {
        let quoted = serde_json::to_string(EVENT).unwrap();
        let body = body(&quoted);
        assert_eq!(binding_object(body.as_bytes(), BINDING).unwrap(), EVENT);
    }

    #[test]
    fn bodies_without_the_binding_are_refused() {
        fn refused(body: &[u8]) -> Result<Cow<'_, str>, InvocationError> {
            binding_object(body, BINDING)
        }
        assert!(matches!(refused(b"not json"), Err(InvocationError::NotAnInvocation(_))));
        assert!(matches!(refused(b"{}"), Err(InvocationError::NotAnInvocation(_))));
        assert!(matches!(
            refused(br#"{"data":{}}"#),
            Err(InvocationError::NotAnInvocation(_))
        ));
        assert_eq!(refused(br#"{"Data":{}}"#), Err(InvocationError::NoBinding(BINDING)));
        assert_eq!(
            refused(br#"{"Data":{"other":{}}}"#),
            Err(InvocationError::NoBinding(BINDING))
        );
        assert_eq!(
            refused(br#"{"Data":{"eventGridEvent":null}}"#),
            Err(InvocationError::NoBinding(BINDING))
        );
        let invalid_utf8 = b"{\"Data\":{\"eventGridEvent\":{\"id\":\"\xff\"}}}";
        assert!(matches!(
            refused(invalid_utf8),
            Err(InvocationError::NotAnInvocation(_))
        ));
    }

    #[test]
    fn a_bound_object_is_read_in_the_envelope_pass_as_its_text_would_be() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Event {
            id: String,
            data: serde_json::Value,
        }
        let body = body(EVENT);
        let direct: Option<Event> = parse_binding(body.as_bytes(), BINDING);
        let from_text: Event = serde_json::from_str(&binding_object(body.as_bytes(), BINDING).unwrap()).unwrap();
        assert_eq!(direct, Some(from_text));
        let quoted = self::body(&serde_json::to_string(EVENT).unwrap());
        assert_eq!(
            parse_binding::<Event>(quoted.as_bytes(), BINDING),
            None,
            "a string holding it: the slow path"
        );
        for refused in [
            &b"not json"[..],
            b"{}",
            br#"{"Data":{}}"#,
            br#"{"Data":{"eventGridEvent":{"id":1}}}"#,
        ] {
            assert_eq!(parse_binding::<Event>(refused, BINDING), None);
        }
        let escaped = br#"{"Data":{"eventGridEvent":{"id":"e1","data":1}}}"#;
        assert_eq!(parse_binding::<Event>(escaped, BINDING).unwrap().id, "e1");
    }

    #[test]
    fn escaped_binding_names_are_matched_by_their_value() {
        let body = br#"{"Data":{"eventGrid\u0045vent":{"id":"e1"}}}"#;
        assert_eq!(binding_object(body, BINDING).unwrap(), r#"{"id":"e1"}"#);
    }

    #[test]
    fn non_object_values_are_refused() {
        for event in ["[1]", "42", r#""not json""#, r#""[1]""#] {
            let body = body(event);
            assert_eq!(
                binding_object(body.as_bytes(), BINDING),
                Err(InvocationError::NotAnObject(BINDING)),
                "{event}"
            );
        }
    }

    #[test]
    fn quarantine_keeps_the_data_without_the_hosts_metadata() {
        let a = br#"{"Data":{"other":{"x":1}},"Metadata":{"sys":{"RandGuid":"1"}}}"#;
        let b = br#"{"Data":{"other":{"x":1}},"Metadata":{"sys":{"RandGuid":"2"}}}"#;
        assert_eq!(quarantine_payload(a), br#"{"other":{"x":1}}"#);
        assert_eq!(quarantine_payload(a), quarantine_payload(b));
        assert_eq!(quarantine_payload(b"garbage"), b"garbage");
    }

    #[test]
    fn reply_has_the_host_field_names() {
        let reply =
            serde_json::to_value(InvocationReply::with_log("done").with_output("jobs", serde_json::json!([]))).unwrap();
        assert_eq!(
            reply,
            serde_json::json!({"Outputs": {"jobs": []}, "Logs": ["done"], "ReturnValue": null})
        );
    }
}
